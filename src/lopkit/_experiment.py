"""An experiment: a benchmark, a composed method and the run's settings, resolved and run.

``make_experiment("scr", "cbp+l2", {"lr": "0.003", "cbp.replacement_rate": "1e-4"},
seeds=30, steps=1_000_000)`` validates everything up front (unknown names and bad values
are errors before anything is written), and :func:`run_experiment` writes the run
directory of DESIGN §6.

A continuous setting may be a list (``"cbp.replacement_rate": "1e-5,1e-4,1e-3"``;
:mod:`lopkit._axes`): the experiment then runs every grid point × every seed as one
program whose learner is built from each run's traced settings (``vectorize="values"``),
or each grid point as its own program (``vectorize="none"``), with the same results.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from lopkit import _axes, _config
from lopkit._cache import enable_compilation_cache
from lopkit._config import field
from lopkit._errors import ConfigError, LopkitError
from lopkit.benchmarks import get_benchmark, make_optimizer
from lopkit.engine import _probes
from lopkit.engine._learner import Learner
from lopkit.engine._program import Program
from lopkit.engine._runner import execute
from lopkit.methods import REMEDIES, Context, compose, parse_method, remedy_configs
from lopkit.results import RunWriter, load, read_config, write_config

CONFIG_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How long, how many seeds, what to record, how to chunk (not what is learned)."""

    seeds: int = field(10, "number of independent seeds run as one program", positive=True)
    first_seed: int = field(
        0, "id of the first seed (seeds first_seed … first_seed+seeds−1)", nonnegative=True
    )
    base_seed: int = field(0, "root of every seed's randomness", nonnegative=True)
    steps: int = field(100_000, "steps per seed (a multiple of bin_size)", positive=True)
    bin_size: int = field(10_000, "steps per reported error bin", positive=True)
    block_size: int = field(
        0, "steps generated at once (divides bin_size; 0: auto, ≤ 1000)", nonnegative=True
    )
    metrics: tuple[str, ...] = field(
        _probes.DEFAULT_PROBES, "probes recorded on the probe batch", may_be_empty=True
    )
    metrics_every: int = field(
        10_000, "steps between probe snapshots (a multiple of bin_size; 0: none)", nonnegative=True
    )
    probe_size: int = field(2_000, "examples in the probe batch", positive=True)
    chunk_bins: int = field(
        0,
        "bins per compiled call (0: by time, a chunk about every checkpoint_seconds)",
        nonnegative=True,
    )
    checkpoint_every: int = field(1, "chunks between checkpoints", positive=True)
    checkpoint_seconds: float = field(
        60.0,
        "with chunk_bins 0: seconds of work per chunk, so about this often a checkpoint "
        "(the first after one bin)",
        positive=True,
    )
    vectorize: str = field(
        "values",
        "settings given as lists: values (every value × seed in one program) or none "
        "(one program per value, run one after another; the same results)",
        choices=("values", "none"),
    )

    def check(self) -> None:
        _probes.resolve(self.metrics)  # unknown names first, then the arithmetic
        steps, bin_size, block = self.steps, self.bin_size, self.block_size
        if steps % bin_size:
            raise ConfigError(
                f"steps ({steps:,}) must be a multiple of bin_size ({bin_size:,}); the nearest "
                f"that work: {_config.nearest_multiples(steps, bin_size)}"
            )
        if block and bin_size % block:
            raise ConfigError(
                f"block_size ({block:,}) must divide bin_size ({bin_size:,}): block_size "
                f"{_config.nearest_divisors(block, bin_size)}, or bin_size "
                f"{_config.nearest_multiples(bin_size, block)} (with steps a multiple of it)"
            )
        if self.metrics_every % bin_size:
            raise ConfigError(
                f"metrics_every ({self.metrics_every:,}) must be a multiple of bin_size "
                f"({bin_size:,}); the nearest that work: "
                f"{_config.nearest_multiples(self.metrics_every, bin_size)} (or 0: no probes)"
            )

    def resolved(self) -> RunConfig:
        """Autos filled in: block_size, canonical metric names (chunk_bins 0 stays: by time)."""
        block = self.block_size or max(
            d for d in range(1, min(self.bin_size, 1000) + 1) if self.bin_size % d == 0
        )
        metrics = _probes.resolve(self.metrics)
        return dataclasses.replace(self, block_size=block, metrics=metrics)


RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
# Settings that change how a run is executed but not what any seed computes.
EXECUTION_ONLY = {"chunk_bins", "checkpoint_every", "checkpoint_seconds"}


def fitting_bin_size(steps: int, suggested: int, block: int = 0) -> int | None:
    """The bin size for a run of ``steps`` when the user set none: the benchmark's
    ``suggested`` size if it divides ``steps``, else the largest divisor of ``steps`` that
    is at most ``suggested`` (``steps`` itself when it is shorter: one bin) and a multiple
    of ``block`` (a fixed block size, e.g. one rollout; 0: any). None if there is none
    (``steps`` not a multiple of ``block``)."""
    unit = block or 1
    if steps % unit:
        return None
    if steps <= suggested:
        return steps
    return next((d for d in range(suggested, 0, -1) if steps % d == 0 and d % unit == 0), None)


def _blocks_error(name: str, value: int, block: int, own: bool) -> ConfigError:
    """``name`` (steps or bin_size) is not a whole number of blocks: the nearest that are."""
    whose = "" if own else " (the benchmark's: the steps it generates at once, e.g. a rollout)"
    fitted = "; a bin size that fits is then chosen" if name == "steps" else ""
    return ConfigError(
        f"{name} ({value:,}) must be a multiple of block_size ({block:,}){whose}; the nearest "
        f"that work: {_config.nearest_multiples(value, block)}{fitted}"
    )


def _fit_bins(values: dict[str, Any], explicit: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with bin_size (and metrics_every) fitted to steps where the user set no
    bin size; returns the new values and a note per changed setting (for config.yaml)."""
    steps = _config.coerce(RunConfig, "steps", values.get("steps", RunConfig.steps))
    suggested = _config.coerce(RunConfig, "bin_size", values.get("bin_size", RunConfig.bin_size))
    if "bin_size" in explicit and "block_size" not in explicit:
        block = _config.coerce(RunConfig, "block_size", values.get("block_size", 0))
        if block and suggested % block:  # the benchmark's block (e.g. one rollout)
            raise _blocks_error("bin_size", suggested, block, False)
    if "bin_size" in explicit:  # the benchmark's probe interval fitted to it, if need be
        return _fit_every(values, explicit, steps, suggested, {}, only_misfit=True)
    if steps % suggested == 0:
        return values, {}
    block = _config.coerce(RunConfig, "block_size", values.get("block_size", 0))
    bin_size = fitting_bin_size(steps, suggested, block)
    if bin_size is None:  # steps is not a whole number of blocks: no bin size fits
        raise _blocks_error("steps", steps, block, "block_size" in explicit)
    notes = {
        "bin_size": f"{bin_size}: chosen because steps ({steps}) is not a multiple of the "
        f"benchmark's bin size ({suggested}); set bin_size to choose another"
    }
    return _fit_every({**values, "bin_size": bin_size}, explicit, steps, bin_size, notes)


def _fit_every(
    values: dict[str, Any],
    explicit: set[str],
    steps: int,
    bin_size: int,
    notes: dict[str, str],
    only_misfit: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with metrics_every, unless the user set it, made a multiple of bin_size
    (and at most steps, unless ``only_misfit``: then only one that is no multiple)."""
    every = _config.coerce(
        RunConfig, "metrics_every", values.get("metrics_every", RunConfig.metrics_every)
    )
    misfit = every % bin_size or (every > steps and not only_misfit)
    if "metrics_every" not in explicit and every and misfit:
        fitted = min(steps, max(bin_size, every // bin_size * bin_size))
        values = {**values, "metrics_every": fitted}
        notes = {
            **notes,
            "metrics_every": f"{fitted}: the multiple of bin_size nearest {every}, at most steps",
        }
    return values, notes


@dataclasses.dataclass(frozen=True)
class Experiment:
    benchmark: Any
    config: Any
    method_names: tuple[str, ...]
    remedy_configs: tuple[Any, ...]
    run: RunConfig
    chosen: tuple[tuple[str, str], ...] = ()  # run settings lopkit chose, with why
    report: tuple[tuple[str, Any], ...] = ()  # what the run reports (results._describe)
    # Swept settings ((name, values), …); config and remedy_configs hold the first values.
    axes: _axes.Axes = ()

    @property
    def method(self) -> str:
        return "+".join(self.method_names)

    @property
    def swept(self) -> tuple[str, ...]:
        """The names of the swept settings, in the order given."""
        return tuple(name for name, _ in self.axes)

    def _learner(self, problem: Any, settings: dict[str, Any]) -> Learner:
        """The learner with ``settings`` (``{name: value}``, values concrete or traced)
        in place of the configured values: benchmark settings are optimizer settings,
        ``remedy.key`` settings go to that remedy's config (its ceiling: the largest
        values of the axes)."""
        names = list(self.method_names)
        optimizer = {**problem.optimizer}
        remedy_values: dict[str, dict[str, Any]] = {}
        for key, value in settings.items():
            if "." in key:
                remedy, _, sub = key.partition(".")
                remedy_values.setdefault(remedy, {})[sub] = value
            else:
                optimizer[key] = value
        configs = tuple(
            dataclasses.replace(c, **remedy_values.get(n, {}))
            for n, c in zip(names, self.remedy_configs, strict=True)
        )
        tops: dict[str, dict[str, Any]] = {}
        for key, values in self.axes:
            if "." in key:
                remedy, _, sub = key.partition(".")
                tops.setdefault(remedy, {})[sub] = max(values)
        ceilings = tuple(
            dataclasses.replace(c, **tops[n]) if n in tops else None
            for n, c in zip(names, self.remedy_configs, strict=True)
        )
        draft = problem.make_network(problem.network)
        method = compose(names, configs, Context(draft, optimizer["lr"]), ceilings)
        network = method.merged("architecture", problem.network)
        net = problem.make_network(network)
        optimizer = method.merged("optimizer", optimizer)
        method = compose(names, configs, Context(net, optimizer["lr"]), ceilings)
        base = (problem.optimizer_fn or make_optimizer)(optimizer)
        return Learner(
            net,
            problem.loss_fn,
            problem.error_fn,
            method,
            method.transformation(base),
            base,
            tuple(problem.boundary_events),
        )

    @property
    def identity(self) -> str:
        """What the program computes, as text: the resolved config without the settings
        that only change how it is executed (equal identities share one compilation)."""
        resolved = self.resolved()
        resolved["run"] = {
            k: v for k, v in resolved["run"].items() if k not in EXECUTION_ONLY | {"vectorize"}
        }
        return json.dumps(resolved, sort_keys=True, default=str)

    def build(self) -> tuple[Program, str]:
        """The compiled program and the name of the benchmark's error metric."""
        problem = self.benchmark.build(self.config)
        for key in self.swept:
            if "." not in key and key not in problem.optimizer:
                raise ConfigError(
                    f"{self.benchmark.name} does not read {key} as an optimizer setting, so "
                    f"it cannot take a list here; run one program per value with `lopkit sweep`"
                )
        learner = self._learner(problem, {})
        _probes.check(self.run.metrics, learner, problem.stream)
        _check_stream_run(problem.stream, self.run)
        program = Program(
            stream=problem.stream,
            learner=learner,
            base_seed=self.run.base_seed,
            bin_size=self.run.bin_size,
            block_size=self.run.block_size,
            probes=self.run.metrics,
            probe_size=self.run.probe_size,
            metrics_every=self.run.metrics_every,
            seed_map=problem.seed_map,
            protocol=problem.protocol,
            configure=(lambda s: self._learner(problem, s)) if self.axes else None,
            identity=self.identity,
        )
        return program, problem.error_name

    def resolved(self) -> dict[str, Any]:
        """Every setting written out (config.yaml); a swept setting as its list of values,
        and ``axes`` naming the swept settings in order."""
        bench = _config.to_dict(self.config)
        remedies = {
            n: _config.to_dict(c)
            for n, c in zip(self.method_names, self.remedy_configs, strict=True)
        }
        for key, values in self.axes:
            if "." in key:
                remedy, _, sub = key.partition(".")
                remedies[remedy][sub] = list(values)
            else:
                bench[key] = list(values)
        run = _config.to_dict(self.run)
        if not self.axes:  # meaningless without lists (and runs made before it lack it)
            del run["vectorize"]
        return {
            "version": CONFIG_VERSION,
            "benchmark": self.benchmark.name,
            "method": self.method,
            "benchmark_config": bench,
            "remedies": remedies,
            "run": run,
            **({"axes": list(self.swept)} if self.axes else {}),
            **({"chosen": dict(self.chosen)} if self.chosen else {}),
            **({"report": dict(self.report)} if self.report else {}),
        }

    @property
    def seed_ids(self) -> np.ndarray:
        return np.arange(self.run.first_seed, self.run.first_seed + self.run.seeds, dtype=np.int32)

    def _dtypes(self) -> dict[str, type]:
        out = {}
        for key in self.swept:
            if "." in key:
                remedy, _, sub = key.partition(".")
                out[key] = _axes.dtype_of(REMEDIES[remedy].config, sub)
            else:
                out[key] = _axes.dtype_of(self.benchmark.config, key)
        return out

    def runs(self, exact: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(seed ids ``[R]``, ``{swept setting: [R]}``) of the program's R runs: every grid
        point × every seed (just the seeds when nothing is swept). The settings are typed
        as the program reads them (float32, int32), or float64 as given with ``exact``
        (the metrics table's columns)."""
        if not self.axes:
            return self.seed_ids, {}
        dtypes = {n: np.float64 for n in self.swept} if exact else self._dtypes()
        return _axes.run_settings(self.axes, dtypes, self.seed_ids)

    def cell(self, point: dict[str, Any]) -> Experiment:
        """The plain experiment of one grid point (its values concrete, nothing swept)."""
        bench = {k: v for k, v in point.items() if "." not in k}
        by_remedy: dict[str, dict[str, Any]] = {}
        for key, value in point.items():
            if "." in key:
                remedy, _, sub = key.partition(".")
                by_remedy.setdefault(remedy, {})[sub] = value
        configs = tuple(
            _config.validate(dataclasses.replace(c, **by_remedy.get(n, {})))
            for n, c in zip(self.method_names, self.remedy_configs, strict=True)
        )
        config = _config.validate(dataclasses.replace(self.config, **bench))
        run = dataclasses.replace(self.run, vectorize="values")
        return dataclasses.replace(self, config=config, remedy_configs=configs, run=run, axes=())


def _check_stream_run(stream: Any, run: RunConfig) -> None:
    """A stream whose block has a fixed length (a rollout) or a bounded probe batch."""
    need = getattr(stream, "block_steps", None)
    if need and run.block_size != need:
        raise ConfigError(
            f"this benchmark's block is one rollout of {need} steps; block_size must be "
            f"{need} (got {run.block_size}), and bin_size and steps multiples of it"
        )
    most = getattr(stream, "max_probe_size", None)
    if most and run.probe_size > most:
        raise ConfigError(f"probe_size ({run.probe_size}) must be at most {most} here")


def split_settings(
    settings: dict[str, Any], benchmark_fields: set[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """Route ``--set`` keys: ``remedy.key`` → remedy, benchmark keys, run keys; else error."""
    bench, remedies, run = {}, {}, {}
    for key, value in settings.items():
        if "." in key:
            remedy, _, sub = key.partition(".")
            remedies.setdefault(remedy, {})[sub] = value
        elif key in benchmark_fields:
            bench[key] = value
        elif key in RUN_FIELDS:
            run[key] = value
        else:
            raise _config.unknown_name(
                "setting", key, sorted(benchmark_fields | RUN_FIELDS) + ["<remedy>.<setting>"]
            )
    return bench, remedies, run


def make_experiment(
    benchmark: str, method: str = "backprop", settings: dict[str, Any] | None = None, **run: Any
) -> Experiment:
    """Validate and resolve an experiment. ``run`` takes RunConfig fields (seeds=, steps=…)."""
    bench = get_benchmark(benchmark)
    names = parse_method(method)
    fields = {f.name for f in dataclasses.fields(bench.config)}
    classes = {n: REMEDIES[n].config for n in names}
    scalars, axes = _axes.split_lists(dict(settings or {}), bench.config, classes, RunConfig)
    bench_settings, remedy_settings, run_settings = split_settings(scalars, fields)
    config = _config.build(bench.config, bench_settings)
    configs = remedy_configs(names, remedy_settings, bench.remedy_defaults_for(names))
    given = {**run_settings, **{k: v for k, v in run.items() if v is not None}}
    _probes.resolve(_config.coerce(RunConfig, "metrics", given.get("metrics", RunConfig.metrics)))
    run_values, chosen = _fit_bins({**bench.run_defaults_for(config), **given}, set(given))
    run_config = _config.build(RunConfig, run_values).resolved()
    experiment = Experiment(
        bench, config, tuple(names), configs, run_config, tuple(sorted(chosen.items())), axes=axes
    )
    for point in _axes.grid(axes)[1:]:  # every grid point is a valid configuration
        experiment.cell(point)
    program, error_name = experiment.build()  # refuse invalid combinations before writing
    return dataclasses.replace(experiment, report=report_of(program.stream, error_name))


def report_of(stream: Any, error_name: str) -> tuple[tuple[str, Any], ...]:
    """config.yaml's ``report``: the reported metric, and the tasks of a task-based stream
    (``steps_per_task``, or ``task_starts`` when tasks differ in length)."""
    report: list[tuple[str, Any]] = [("metric", error_name)]
    per_task = getattr(stream, "steps_per_task", None)
    starts = getattr(stream, "task_starts", None)
    if isinstance(per_task, int | np.integer) and per_task > 0:
        report.append(("steps_per_task", int(per_task)))
    elif starts is not None:
        report.append(("task_starts", [int(t) for t in np.asarray(starts)]))
    return tuple(report)


# Derived from the rest (runs made before these existed lack them): not compared on resume.
DERIVED = {"report", "chosen"}


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted((set(old) | set(new)) - (DERIVED if not prefix else set())):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b and key not in EXECUTION_ONLY:
            out.append(f"{prefix}{key}: {a!r} (saved) vs {b!r} (now)")
    return out


def prepare_run_dir(out: str | Path, experiment: Experiment, resume: bool, overwrite: bool) -> bool:
    """Check/prepare the output directory; returns True when resuming a started run.

    An existing run is never overwritten silently: it needs ``resume`` or ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LopkitError(
            f"--out {out} is a file, not a run directory; name a directory (e.g. runs/{out.stem})"
        )
    exists = out.exists() and any(out.iterdir())
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if resume:
        if not (out / "config.yaml").exists():
            raise LopkitError(f"cannot resume: {out} holds no run (no config.yaml)")
        diffs = _differences(read_config(out), experiment.resolved())
        if diffs:
            raise ConfigError(
                "cannot resume with a different configuration:\n  " + "\n  ".join(diffs)
            )
        return True
    if exists:
        if not overwrite:
            raise LopkitError(
                f"output directory {out} exists and is not empty; "
                "use --resume to continue it or --overwrite to replace it"
            )
        if not (out / "config.yaml").exists():
            raise LopkitError(f"refusing to overwrite {out}: it is not a lopkit run directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, experiment.resolved())
    return False


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
