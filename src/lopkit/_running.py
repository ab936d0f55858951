"""Running an experiment into its directory: one program for every value × seed, or one
program per grid point (``vectorize="none"``, cells run one after another), resumable."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import pandas as pd

from lopkit import _axes
from lopkit._cache import enable_compilation_cache
from lopkit._errors import ConfigError
from lopkit._rundir import _differences, prepare_run_dir
from lopkit.engine._runner import execute
from lopkit.results import load, read_config
from lopkit.results._store import RunWriter

if TYPE_CHECKING:
    from lopkit._experiment import Experiment


def run_experiment(
    experiment: Experiment,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after_chunks: int | None = None,
    **execute_options: Any,
) -> dict[str, Any]:
    """Run (or resume) an experiment into ``out``; returns the runner's summary.

    ``execute_options`` go to :func:`lopkit.engine._runner.execute` (``log``, ``clock``).
    Compiled programs are kept in JAX's persistent cache (:mod:`lopkit._cache`)."""
    enable_compilation_cache()
    resuming = prepare_run_dir(out, experiment, resume, overwrite)
    if resuming and (Path(out) / "metrics.parquet").exists():
        return {"finished": True, "seconds": 0.0, "bins_run": 0, "seed_steps_per_second": math.nan}
    if experiment.axes and experiment.run.vectorize == "none":
        return _run_cells(experiment, Path(out), progress, stop_after_chunks, **execute_options)
    program, error_name = experiment.build()
    r = experiment.run
    seeds, settings = experiment.runs()
    columns = experiment.runs(exact=True)[1]
    return execute(
        program,
        seeds,
        r.steps // r.bin_size,
        out,
        chunk_bins=r.chunk_bins,
        checkpoint_every=r.checkpoint_every,
        checkpoint_seconds=r.checkpoint_seconds,
        resume=resuming,
        progress=progress,
        error_name=error_name,
        stop_after_chunks=stop_after_chunks,
        settings=settings,
        columns=columns,
        **execute_options,
    )


CELLS_DIR = "cells"


def _run_cells(
    experiment: Experiment,
    out: Path,
    progress: bool,
    stop_after_chunks: int | None,
    **execute_options: Any,
) -> dict[str, Any]:
    """``vectorize="none"``: each grid point a plain run of its own program, in
    ``out/cells/<i>/`` (each resumable on its own), then one metrics table in ``out`` with
    the swept settings' columns, as the vectorized run writes it."""
    points = _axes.grid(experiment.axes)
    seconds, bins, last = 0.0, 0, {}
    tables, states = [], []
    for i, point in enumerate(points):
        cell_dir = out / CELLS_DIR / f"{i:04d}"
        cell = experiment.cell(point)
        resume = (cell_dir / "config.yaml").exists()
        last = run_experiment(
            cell,
            cell_dir,
            resume=resume,
            progress=progress,
            stop_after_chunks=stop_after_chunks,
            **execute_options,
        )
        seconds += last["seconds"]
        bins += last.get("bins_run", 0)
        states.append(last.get("state"))
        if not last["finished"]:
            return {**last, "seconds": seconds, "bins_run": bins}
        table = load(cell_dir).drop(columns="run")
        for j, (name, value) in enumerate(point.items()):
            table.insert(1 + j, name, float(value))
        tables.append(table)
    writer = RunWriter(out, settings=experiment.swept)
    writer.append(0, pd.concat(tables, ignore_index=True))
    writer.finalize()
    steps = bins * experiment.run.bin_size * experiment.run.seeds
    return {
        **last,
        "seconds": seconds,
        "bins_run": bins,
        "seed_steps_per_second": steps / max(seconds, 1e-9),
        "state": _joined(states, experiment.run.seeds),
    }


def _joined(states: list[Any], seeds: int) -> dict[str, Any]:
    """The cells' final states as one, runs along the leading axis (as the vectorized run's),
    as far as their structures agree (an optimizer state may differ from cell to cell, e.g.
    SGD with and without momentum); where a cell was finished before this call (no state),
    just ``diverged_at`` (−1 there)."""
    if any(s is None for s in states):
        diverged = [np.full(seeds, -1) if s is None else s["diverged_at"] for s in states]
        return {"diverged_at": np.concatenate([np.asarray(d) for d in diverged])}
    return _join(jax.device_get(states))


def _join(trees: list[Any]) -> Any:
    structures = {jax.tree_util.tree_structure(t) for t in trees}
    if len(structures) == 1:
        return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *trees)
    if all(isinstance(t, dict) for t in trees):
        common = [k for k in trees[0] if all(k in t for t in trees)]
        joined = {k: _join([t[k] for t in trees]) for k in common}
        return {k: v for k, v in joined.items() if v is not None}
    return None


def run_or_reuse(
    experiment: Experiment,
    run_dir: str | Path,
    progress: bool = False,
    replace: bool = False,
    log: Any = None,
) -> None:
    """Run ``experiment`` into ``run_dir``: a finished run there with the same configuration
    is reused, an interrupted one finished. One with another configuration is kept and
    refused (a ConfigError naming the directory and every differing setting), or, with
    ``replace``, replaced, saying so (``log``: a function of one line; default: stderr)."""
    run_dir = Path(run_dir)
    if (run_dir / "config.yaml").exists():
        diffs = _differences(read_config(run_dir), experiment.resolved())
        if not diffs:  # the same configuration: reuse (or finish) it
            run_experiment(experiment, run_dir, resume=True, progress=progress)
            return
        listed = "\n  ".join(diffs)
        if not replace:
            raise ConfigError(
                f"{run_dir} holds a run with other settings:\n  {listed}\nIt is kept: choose "
                "another output directory, delete it, or replace it (replace=True; --replace)"
            )
        (log or _stderr_line)(f"replacing {run_dir}, a run with other settings:\n  {listed}")
    overwrite = (run_dir / "config.yaml").exists()
    run_experiment(experiment, run_dir, overwrite=overwrite, progress=progress)


def _stderr_line(message: str) -> None:
    print(f"lopkit: {message}", file=sys.stderr, flush=True)
