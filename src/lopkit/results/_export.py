"""A run's metrics in the dashboards RL researchers already use: TensorBoard event files and
Weights & Biases offline runs.

The tidy ``metrics.parquet`` stays the source; an export is a view of it, written again
from it at any time. Both exporters walk the same series (:func:`_series`): per combination
of swept values (a run that swept settings in one program, ``lr=0.01``), per seed, the
metric values by step. Each metric is a scalar, ``<metric>`` for whole-network values and
``<metric>/<layer>`` per layer, at the run's step, with NaN where a seed had diverged (the
dashboards leave a gap).

* :func:`export_tensorboard` writes one TensorBoard "run" (a folder of event files) per
  seed, ``seed_<id>``, and one of the mean over seeds, ``mean`` (finite values only; a
  diverged seed drops out), under a folder per swept combination (``lr=0.01/seed_0``).
* :func:`export_wandb` writes one W&B offline run per seed and swept combination, in the
  run's W&B *group* (the lopkit run's name), with the run's ``config.yaml`` (the swept
  values and the seed filled in) as its W&B config; W&B draws the mean over a group itself.
  ``wandb sync OUT/wandb/offline-run-*`` uploads them. Nothing reaches the network while
  exporting (offline mode; no git, code, requirements, system or console capture).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._errors import LopkitError, ResultsError
from ._aggregate import swept_columns
from ._store import load, read_config

__all__ = ["export_tensorboard", "export_wandb"]


def _tag(metric: str, layer: str) -> str:
    return f"{metric}/{layer}" if layer else metric


def _point_dir(values: dict[str, object]) -> str:
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _table(run_dir: str | os.PathLike, out: Path) -> pd.DataFrame:
    """The run's metrics to export (``diverged``, an event rather than a curve, left out)."""
    df = load(run_dir)
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} is a file; name a directory for the exported files")
    df = df[df["metric"] != "diverged"]
    if df.empty:
        raise ResultsError(f"{run_dir} has no metrics to export")
    return df


def _series(
    df: pd.DataFrame, *, mean: bool
) -> Iterator[tuple[dict[str, Any], int | None, pd.DataFrame]]:
    """``(swept values, seed, rows)`` for each swept combination (``{}`` when nothing was
    swept) and seed in order, then, with ``mean``, ``(values, None, mean over seeds)`` of the
    finite values; ``rows`` has the columns metric, layer, step, value."""
    swept = swept_columns(df.drop(columns="run", errors="ignore"))
    groups = df.groupby(swept, sort=True, dropna=False) if swept else [((), df)]
    for values, rows in groups:
        values = values if isinstance(values, tuple) else (values,)
        point = {
            k: v.item() if hasattr(v, "item") else v for k, v in zip(swept, values, strict=True)
        }
        for seed, g in rows.groupby("seed", sort=True):
            yield point, int(seed), g
        if mean:
            finite = rows[np.isfinite(rows["value"].to_numpy())]
            by = finite.groupby(["metric", "layer", "step"], as_index=False, observed=True)
            yield point, None, by["value"].mean()


def _by_step(rows: pd.DataFrame) -> Iterator[tuple[int, dict[str, float]]]:
    """``(step, {tag: value})`` in increasing step, tags in sorted order."""
    tags = np.array(
        [_tag(str(m), str(la)) for m, la in zip(rows["metric"], rows["layer"], strict=True)]
    )
    steps = rows["step"].to_numpy()
    if not len(steps):  # e.g. the mean of a point where every seed diverged at once
        return
    order = np.lexsort((tags, steps))
    tags, steps, values = tags[order], steps[order], rows["value"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(steps)], strict=True):
        yield (
            int(steps[start]),
            {t: float(v) for t, v in zip(tags[start:stop], values[start:stop], strict=True)},
        )


def _write_events(writer_dir: Path, rows: pd.DataFrame) -> Path:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(writer_dir), flush_secs=3600)
    try:
        for step, scalars in _by_step(rows):
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, global_step=step)
    finally:
        writer.close()
    return writer_dir


def export_tensorboard(run_dir: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Write the metrics of the run in ``run_dir`` as TensorBoard event files under ``out``
    (module docstring: a folder per seed and one for the mean; per swept values); returns
    the folders written. View with ``tensorboard --logdir OUT``."""
    out = Path(out)
    written = []
    for point, seed, rows in _series(_table(run_dir, out), mean=True):
        base = out / _point_dir(point) if point else out
        written.append(_write_events(base / ("mean" if seed is None else f"seed_{seed}"), rows))
    return written


# W&B: offline, silent, and nothing of the user's machine captured (the run's config is the
# record); error reporting off so that wandb-core does not try to send telemetry.
_WANDB_ENV = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "WANDB_DISABLE_GIT": "true",
    "WANDB_DISABLE_CODE": "true",
}
_WANDB_SETTINGS = {
    "mode": "offline",
    "silent": True,
    "console": "off",
    "save_code": False,
    "disable_code": True,
    "disable_git": True,
    "disable_job_creation": True,
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_disable_machine_info": True,
    "x_save_requirements": False,
}


def _require_wandb():
    """The wandb module, or a LopkitError saying how to install it."""
    try:
        import wandb
    except ImportError:
        raise LopkitError(
            "exporting to W&B needs the wandb package: pip install 'lopkit[wandb]'"
        ) from None
    return wandb


@contextlib.contextmanager
def _offline_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _WANDB_ENV}
    os.environ.update(_WANDB_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _config_at(config: dict[str, Any], point: dict[str, Any], seed: int) -> dict[str, Any]:
    """``config`` with the swept settings' lists replaced by this run's values (a remedy's
    ``name.key`` under ``remedies``, any other key where the benchmark or run config has
    it), plus the seed."""
    config = copy.deepcopy(config)
    for key, value in point.items():
        remedy, dot, sub = key.partition(".")
        sections = (
            [config.get("remedies", {}).get(remedy, {})]
            if dot
            else [
                config.get("benchmark_config", {}),
                config.get("run", {}),
            ]
        )
        name = sub if dot else key
        for section in sections:
            if name in section:
                section[name] = value
                break
    return {**config, "seed": seed}


def export_wandb(
    run_dir: str | os.PathLike, out: str | os.PathLike, *, project: str = "lopkit"
) -> list[Path]:
    """Write the metrics of the run in ``run_dir`` as W&B offline runs under
    ``out/wandb/`` (module docstring: one per seed and swept combination, grouped by the
    run's name, its config as W&B config); returns the offline run folders written. Upload
    with ``wandb sync OUT/wandb/offline-run-*`` (``-p PROJECT`` to choose the project).
    Each call writes new W&B runs; sync only the folders of one export.

    Needs the ``wandb`` package (``pip install 'lopkit[wandb]'``)."""
    wandb = _require_wandb()
    out = Path(out)
    df = _table(run_dir, out)
    name = str(df["run"].iloc[0])
    config = read_config(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = getattr(wandb.Settings, "model_fields", _WANDB_SETTINGS)  # names vary by version
    settings = wandb.Settings(**{k: v for k, v in _WANDB_SETTINGS.items() if k in known})
    written = []
    active = wandb.run is not None  # the caller's own run: leave their W&B service running
    with _offline_env():
        try:
            for point, seed, rows in _series(df, mean=False):
                label = _point_dir(point)
                run = wandb.init(
                    dir=str(out),
                    project=project,
                    group=name,
                    job_type=label or None,
                    name="/".join(filter(None, (name, label, f"seed_{seed}"))),
                    config=_config_at(config, point, seed),
                    settings=settings,
                    reinit="create_new",
                )
                try:
                    for step, scalars in _by_step(rows):
                        run.log(scalars, step=step)
                finally:
                    run.finish()
                written.append(Path(run.settings.sync_dir))
        finally:
            if not active:
                wandb.teardown()
    return written
