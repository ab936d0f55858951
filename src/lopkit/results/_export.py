"""A run's metrics in the dashboards RL researchers already use: TensorBoard event files.

The tidy ``metrics.parquet`` stays the source; an export is a view of it, written again
from it at any time. :func:`export_tensorboard` writes one TensorBoard "run" (a folder of
event files) per seed, ``seed_<id>``, and one of the mean over seeds, ``mean`` (finite
values only; a diverged seed drops out); a run that swept settings in one program gets a
folder per combination of values first (``lr=0.01/seed_0``). Each metric is a scalar tag,
``<metric>`` for whole-network values and ``<metric>/<layer>`` per layer, with the step as
TensorBoard's step and NaN where a seed had diverged (TensorBoard leaves a gap).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import ResultsError
from ._aggregate import swept_columns
from ._store import load

__all__ = ["export_tensorboard"]


def _tag(metric: str, layer: str) -> str:
    return f"{metric}/{layer}" if layer else metric


def _point_dir(values: dict[str, object]) -> str:
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _write(writer_dir: Path, rows: pd.DataFrame) -> Path:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(writer_dir), flush_secs=3600)
    try:
        for (metric, layer), g in rows.groupby(["metric", "layer"], sort=True, observed=True):
            tag = _tag(str(metric), str(layer))
            for step, value in zip(g["step"].to_numpy(), g["value"].to_numpy(), strict=True):
                writer.add_scalar(tag, float(value), global_step=int(step))
    finally:
        writer.close()
    return writer_dir


def export_tensorboard(run_dir: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Write the metrics of the run in ``run_dir`` as TensorBoard event files under ``out``
    (module docstring: a folder per seed and one for the mean; per swept values); returns
    the folders written. View with ``tensorboard --logdir OUT``."""
    df = load(run_dir)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} is a file; name a directory for the event files")
    df = df[df["metric"] != "diverged"]  # an event, not a curve
    if df.empty:
        raise ResultsError(f"{run_dir} has no metrics to export")
    swept = swept_columns(df.drop(columns="run", errors="ignore"))
    written = []
    groups = df.groupby(swept, sort=True, dropna=False) if swept else [((), df)]
    for values, rows in groups:
        values = values if isinstance(values, tuple) else (values,)
        base = out / _point_dir(dict(zip(swept, values, strict=True))) if swept else out
        for seed, g in rows.groupby("seed", sort=True):
            written.append(_write(base / f"seed_{int(seed)}", g))
        finite = rows[np.isfinite(rows["value"].to_numpy())]
        mean = finite.groupby(["metric", "layer", "step"], as_index=False, observed=True)["value"]
        written.append(_write(base / "mean", mean.mean()))
    return written
