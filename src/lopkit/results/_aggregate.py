"""Aggregation over seeds: mean ± standard error, the statistic the paper reports.

Dohare et al. (2024) plot, for every bin, the mean over independent runs (seeds) with a
shaded band of one standard error, se = s / sqrt(n), s the sample standard deviation
(ddof = 1). A seed that diverged is masked with NaN in the metrics table; here it simply
drops out: non-finite values are excluded and ``n`` counts the finite ones.

Both functions take a tidy metrics table as returned by :func:`lopkit.results.load` /
``load_many`` (columns run, seed, step, metric, layer, value). A table without a ``run``
column (e.g. a bare part written by the engine) is treated as one run named ``""``.

A run that swept settings in one program has one column per swept setting (docs/design.md §6):
its rows with the same values are one configuration, so the aggregates group by those
columns too (:func:`swept_columns`); runs without them (NaN there) group as before.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .._errors import ResultsError

__all__ = ["early_late", "select", "summarize", "swept_columns"]

# The columns of a metrics table (and ``task``, added by task-binned plots); any other
# column is a swept setting.
TABLE_COLUMNS = ("run", "seed", "step", "metric", "layer", "value", "task")


def swept_columns(df: pd.DataFrame) -> list[str]:
    """The swept settings' columns of a metrics table (e.g. ``["l2.weight_decay", "lr"]``)."""
    return [c for c in df.columns if c not in TABLE_COLUMNS]


def select(df: pd.DataFrame, metric: str, layer: str = "") -> pd.DataFrame:
    """The rows of ``metric`` at ``layer`` (``""`` = whole network), ``value`` set to NaN
    where it is not finite, with a ``run`` column added when missing.

    Raises ValueError listing the metrics in the table when ``metric`` is absent, or
    the layers ``metric`` has when ``layer`` is absent.
    """
    for col in ("seed", "step", "metric", "layer", "value"):
        if col not in df.columns:
            raise ResultsError(f"not a metrics table: no column {col!r} (has {list(df.columns)})")
    if "run" not in df.columns:
        df = df.assign(run="")
    of_metric = df["metric"] == metric
    if not of_metric.any():
        available = sorted(df["metric"].unique().tolist())
        raise ResultsError(f"metric {metric!r} is not in the table; available metrics: {available}")
    rows = df[of_metric & (df["layer"] == layer)]
    if rows.empty:
        layers = sorted(df.loc[of_metric, "layer"].unique().tolist())
        raise ResultsError(
            f"metric {metric!r} has no values for layer {layer!r}; it has layers {layers} "
            "('' = whole network)"
        )
    value = rows["value"].to_numpy(dtype=np.float64)
    return rows.assign(value=np.where(np.isfinite(value), value, np.nan))


def _mean_se_n(grouped) -> pd.DataFrame:
    out = grouped.agg(mean="mean", std="std", n="count")
    out["se"] = out["std"] / np.sqrt(out["n"])
    out.loc[out["n"] < 2, "se"] = np.nan
    out["n"] = out["n"].astype("int64")
    return out[["mean", "se", "n"]]


def summarize(df: pd.DataFrame, metric: str, layer: str = "", by: str = "step") -> pd.DataFrame:
    """Mean and standard error over seeds of ``metric`` at ``layer``, per run and ``by``.

    Returns a frame with columns ``run``, the swept settings' columns (if any),
    ``<by>`` (``step`` by default), ``mean``, ``se``, ``n``: one row per (run, settings,
    by), sorted by them. ``mean`` is the mean of the finite values (NaN when there are
    none), ``n`` their count, ``se`` = std(ddof=1) / sqrt(n), NaN when n < 2.
    """
    rows = select(df, metric, layer)
    if by not in rows.columns:
        raise ResultsError(f"summarize: no column {by!r} to group by")
    keys = ["run", *[c for c in swept_columns(rows) if c != by], by]
    grouped = rows.groupby(keys, sort=True, observed=True, dropna=False)["value"]
    return _mean_se_n(grouped).reset_index()


def _window(n_steps: int, fraction: float) -> int:
    # the tolerance keeps a product landing a hair above a whole number from adding a step
    return max(1, math.ceil(fraction * n_steps - 1e-9))


def early_late(
    df: pd.DataFrame, metric: str, layer: str = "", fraction: float = 0.1
) -> pd.DataFrame:
    """Per run: ``metric`` averaged over the first and over the last ``fraction`` of the
    steps, as mean ± standard error over seeds.

    For each run, with S its distinct steps, the early window is its first
    k = ceil(fraction · S) steps (at least one) and the late window its last k. Each seed's
    finite values in a window are averaged first; then the mean and the standard error
    (ddof = 1, NaN with fewer than two seeds) are taken over the seeds whose window
    average is finite — so a seed that diverged before the late window counts early only.

    Returns a frame with one row per run (per run and values of the swept settings, whose
    columns follow ``run``) and columns ``run``, ``early``, ``early_se``, ``late``,
    ``late_se``, ``n_seeds`` (seeds of the run with any row for the metric), ``early_n``,
    ``late_n`` (seeds that entered each average).
    """
    if not 0.0 < fraction <= 1.0:
        raise ResultsError(f"fraction must be in (0, 1], got {fraction}")
    rows = select(df, metric, layer)
    swept = swept_columns(rows)
    records = []
    for key, g in rows.groupby(["run", *swept], sort=True, observed=True, dropna=False):
        steps = np.sort(g["step"].unique())
        k = _window(len(steps), fraction)
        record = dict(zip(["run", *swept], key, strict=True))
        for name, window in (("early", steps[:k]), ("late", steps[-k:])):
            in_window = g[g["step"].isin(window)]
            per_seed = in_window.groupby("seed", observed=True)["value"].mean().dropna()
            n = len(per_seed)
            record[name] = per_seed.mean() if n else np.nan
            record[f"{name}_se"] = per_seed.std(ddof=1) / math.sqrt(n) if n >= 2 else np.nan
            record[f"{name}_n"] = n
        record["n_seeds"] = g["seed"].nunique()
        records.append(record)
    columns = ["run", *swept, "early", "early_se", "late", "late_se", "n_seeds", "early_n"]
    columns.append("late_n")
    out = pd.DataFrame.from_records(records, columns=columns)
    return out.astype({"n_seeds": "int64", "early_n": "int64", "late_n": "int64"})
