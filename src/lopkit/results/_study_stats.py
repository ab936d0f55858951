"""The statistics of a study report: per-seed scores, per-cell intervals, best settings.

Scores, per seed of a cell, on the benchmark's error metric (whole network):

* **AUC** — the stream average: the mean over all bins of the run (Dohare et al. 2024
  compare settings by the error averaged over the whole run in their sensitivity plots);
* **final** — the mean over the last ``last`` bins (default: the last 10%, at least one).

Over seeds, each is reported as mean ± standard error (std, ddof 1, / √n), or with a 95%
percentile bootstrap interval over seeds (10,000 resamples, fixed generator: the official
RL plots' statistic). The best setting of a method within a condition (a combination of
the grid's values) is the cell with the best mean AUC — lowest for errors and losses,
highest for accuracies and returns (:func:`higher_is_better`). Choosing on the same seeds
that are reported favours the chosen setting; ``select_seeds`` chooses on those seeds and
reports the rest.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from lopkit._errors import ConfigError

from ._aggregate import select

BOOTSTRAP_RESAMPLES = 10_000


def higher_is_better(metric: str) -> bool:
    """Accuracies and returns are better high; errors, losses (everything else) low."""
    return "accuracy" in metric or "return" in metric


def last_window(n_bins: int, last: int | None) -> int:
    """Bins in the final window: ``last`` (capped at ``n_bins``) or 10% (at least one)."""
    if last is None:
        return max(1, math.ceil(0.1 * n_bins - 1e-9))
    if last < 1:
        raise ConfigError(f"--last must be > 0, got {last}")
    return min(last, n_bins)


def parse_seeds(text: str) -> set[int]:
    """``"0-4,7"`` → {0, 1, 2, 3, 4, 7} (ranges inclusive)."""
    seeds: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ConfigError(f"--select-seeds takes seeds like 0-4,7; got {text!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"--select-seeds: empty range {part.strip()!r}")
        seeds.update(range(lo, hi + 1))
    return seeds


def seed_scores(df: pd.DataFrame, metric: str, last: int | None) -> pd.DataFrame:
    """Per (run, seed): ``auc`` (mean over all bins) and ``final`` (mean over the last
    window of bins) of ``metric``; non-finite values (diverged seeds) are left out."""
    rows = select(df, metric)
    out = []
    for run, g in rows.groupby("run", sort=False, observed=True):
        steps = np.sort(g["step"].unique())
        window = steps[-last_window(len(steps), last) :]
        by_seed = g.groupby("seed", observed=True)
        final = g[g["step"].isin(window)].groupby("seed", observed=True)["value"].mean()
        frame = pd.DataFrame({"auc": by_seed["value"].mean(), "final": final})
        out.append(frame.reset_index().assign(run=run))
    if not out:
        return pd.DataFrame(columns=["run", "seed", "auc", "final"])
    return pd.concat(out, ignore_index=True)[["run", "seed", "auc", "final"]]


def interval(values: np.ndarray, ci: str) -> tuple[float, float, float, float, int]:
    """(mean, se, lo, hi, n) of the finite ``values``; lo/hi = mean ∓ se, or the 95%
    percentile bootstrap interval of the mean with ``ci == "bootstrap"``."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    mean = float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    if ci == "bootstrap" and n >= 2:
        rng = np.random.default_rng(0)
        means = values[rng.integers(0, n, (BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
        lo, hi = np.percentile(means, [2.5, 97.5])
        return mean, se, float(lo), float(hi), n
    return mean, se, mean - se, mean + se, n


def cell_table(scores: pd.DataFrame, ci: str = "se") -> pd.DataFrame:
    """Per run: n_seeds and, for auc and final, mean, se, lo, hi (see :func:`interval`)."""
    records = []
    for run, g in scores.groupby("run", sort=False):
        record = {"run": run}
        for name in ("auc", "final"):
            mean, se, lo, hi, n = interval(g[name].to_numpy(), ci)
            record.update({name: mean, f"{name}_se": se, f"{name}_lo": lo, f"{name}_hi": hi})
            record["n_seeds"] = n
        records.append(record)
    columns = ["run", "n_seeds"] + [
        f"{name}{s}" for name in ("auc", "final") for s in ("", "_se", "_lo", "_hi")
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def best_cells(table: pd.DataFrame, group_keys: list[str], higher=False) -> pd.DataFrame:
    """The row of ``table`` with the best mean ``auc`` in every group of ``group_keys``
    (e.g. condition and method). ``higher``: True when a higher AUC is better, for all
    rows or per row (a boolean array); cells without a finite AUC are never chosen."""
    sign = np.where(np.broadcast_to(np.asarray(higher, bool), (len(table),)), -1.0, 1.0)
    key = pd.Series(table["auc"].to_numpy(np.float64) * sign, index=table.index)
    ranked = table.assign(_key=key.fillna(np.inf)).sort_values("_key", kind="stable")
    best = ranked.groupby(group_keys, sort=False, dropna=False).head(1)
    return best.drop(columns="_key").sort_index()


def log_spaced(values) -> bool:
    """Whether sorted positive values are spaced evenly on a log axis rather than a linear
    one: their log gaps vary less than their linear gaps (coefficient of variation), or,
    with two values, they differ by 10× or more."""
    v = np.unique(np.asarray([x for x in values if x is not None], np.float64))
    if len(v) < 2 or np.any(v <= 0) or not np.all(np.isfinite(v)):
        return False
    if len(v) == 2:
        return v[1] / v[0] >= 10

    def spread(gaps):
        return np.std(gaps) / np.mean(gaps)

    return bool(spread(np.diff(np.log(v))) < spread(np.diff(v)))
