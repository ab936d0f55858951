"""Aggregate statistics over runs and tasks (Agarwal et al., "Deep Reinforcement Learning
at the Edge of the Statistical Precipice", NeurIPS 2021), computed with their library
``rliable``; and the view of loss of plasticity per task.

Scores are arrays ``[runs, tasks]`` (a run: one seed; a task: one benchmark, condition or
environment), one per method, as rliable takes them: ``{"cbp": array, "backprop": array}``.
:func:`final_scores` makes them from a metrics table (each seed's mean over the last bins).

* **IQM** — the interquartile mean: the mean of the middle 50% of all runs × tasks
  (``scipy.stats.trim_mean(…, 0.25)`` over the flattened array; rliable ``aggregate_iqm``);
  robust to outlying runs, less noisy than the median (paper §4.3).
* **Optimality gap** — how far the scores fall short of a target γ: ``γ − mean(min(x, γ))``
  (rliable ``aggregate_optimality_gap``); lower is better.
* **Mean** and **median** (of the per-task means), for reference.
* Intervals: 95% **stratified bootstrap** confidence intervals, percentile method: runs
  are resampled with replacement within each task, each task on its own (paper §4.1);
  ``task_bootstrap`` resamples the tasks too. This is rliable's ``StratifiedBootstrap``
  (``library.py``: an index array ``[runs, tasks]`` of runs drawn per task, and one row of
  tasks) written out here with a seeded NumPy generator, because ``rliable.library``
  cannot be used beside pandas 3: it subclasses ``arch``'s bootstraps, and arch 7 fails to
  import under pandas 3 while arch 8 refuses the ``random_state`` argument rliable 1.2
  passes. The statistics themselves are rliable's (``rliable.metrics``).
* **Probability of improvement** ``P(X > Y)``: per task the Mann–Whitney U statistic over
  all pairs of runs, ``P(x > y) + ½ P(x = y)``, averaged over tasks (rliable
  ``probability_of_improvement``), with a stratified bootstrap interval, each method's
  runs resampled independently (rliable's ``StratifiedIndependentBootstrap``; paper §4.4).
* **Performance profile** (score distribution): the fraction of all runs × tasks with a
  score above τ, for each τ (paper §4.2), with bootstrap bands.

For a metric where lower is better (errors, losses: :func:`~._study_stats.higher_is_better`
says which), the scores are negated before rliable sees them and the results turned back:
an IQM is then the IQM of the errors, "improvement" means a lower error, a profile counts
runs *below* τ, and the optimality gap is the mean excess over γ, ``mean(max(x − γ, 0))``
(γ = 0 by default: the mean error).

:func:`task_end_scores` is the plasticity summary: each seed's value of a metric at the end
of each task (the last bin before the task changes), against the task index — the view in
which a learner that loses plasticity reaches less and less on each new task.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import ResultsError
from ._aggregate import select, swept_columns
from ._describe import reported_metric, task_of_step
from ._store import _run_name, load_many, read_config
from ._study_stats import last_window

__all__ = [
    "aggregate_scores",
    "final_scores",
    "performance_profile",
    "probability_of_improvement",
    "task_end_scores",
]

REPS = 2_000  # bootstrap resamples (rliable's default for profiles; its notebooks use 2,000+)
Scores = Mapping[str, np.ndarray]


def _checked(scores: Scores) -> dict[str, np.ndarray]:
    out = {}
    for name, s in scores.items():
        a = np.asarray(s, np.float64)
        if a.ndim == 1:
            a = a[:, None]  # one task
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ResultsError(f"scores of {name!r} must be an array [runs, tasks], got {a.shape}")
        if not np.isfinite(a).all():
            raise ResultsError(
                f"scores of {name!r} have {int((~np.isfinite(a)).sum())} non-finite values "
                "(diverged seeds?): drop those runs or give them a score first"
            )
        out[str(name)] = a
    if not out:
        raise ResultsError("no scores given")
    return out


def _bootstrap(
    arrays: list[np.ndarray], stat, reps: int, ci: float, seed: int, task_bootstrap: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval ``(low, high)`` of a statistic over ``reps`` stratified
    bootstrap resamples: in each, every array's runs are drawn with replacement within each
    task, independently of the other arrays (and, with ``task_bootstrap``, the tasks are
    drawn with replacement too, one draw for all arrays' columns). ``stat`` takes the
    resamples batched, ``[reps, runs, tasks]`` per array, and returns ``[reps, k]``: the
    statistic of each resample (:func:`_batched_stats`, tested equal to rliable's)."""
    if not 0 < ci < 1:
        raise ResultsError(f"ci must be between 0 and 1, got {ci}")
    if reps < 1:
        raise ResultsError(f"reps must be ≥ 1, got {reps}")
    rng = np.random.default_rng(seed)
    tasks = arrays[0].shape[1]
    if task_bootstrap:
        cols = rng.integers(0, tasks, (reps, 1, tasks))
    else:
        cols = np.broadcast_to(np.arange(tasks), (reps, 1, tasks))
    resampled = [a[rng.integers(0, a.shape[0], (reps, *a.shape)), cols] for a in arrays]
    values = np.asarray(stat(*resampled), np.float64).reshape(reps, -1)
    alpha = 100 * (1 - ci) / 2
    lo, hi = np.percentile(values, [alpha, 100 - alpha], axis=0)
    return lo, hi


def _batched_stats(x: np.ndarray, gamma: float) -> np.ndarray:
    """``[reps, 4]``: rliable's IQM, optimality gap (at ``gamma``), mean and median of each
    ``x[r]`` (``[runs, tasks]``), computed for all resamples at once."""
    from scipy import stats

    flat = x.reshape(len(x), -1)
    task_means = x.mean(axis=1)
    return np.stack(
        [
            stats.trim_mean(flat, 0.25, axis=1),  # aggregate_iqm: all runs × tasks together
            gamma - np.minimum(flat, gamma).mean(axis=1),  # aggregate_optimality_gap
            task_means.mean(axis=1),  # aggregate_mean: the mean of the per-task means
            np.median(task_means, axis=1),  # aggregate_median: their median
        ],
        axis=1,
    )


def _batched_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[reps]``: rliable's probability of improvement of each ``x[r]`` over ``y[r]``: per
    task the Mann–Whitney U of x over y over all pairs, ``P(x > y) + ½ P(x = y)``, averaged
    over tasks."""
    a, b = x[:, :, None, :], y[:, None, :, :]
    per_task = ((a > b) + 0.5 * (a == b)).mean(axis=(1, 2))
    return per_task.mean(axis=1)


def aggregate_scores(
    scores: Scores,
    higher_is_better: bool = True,
    gamma: float | None = None,
    reps: int = REPS,
    ci: float = 0.95,
    task_bootstrap: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Per method: IQM, optimality gap (to ``gamma``; default 1 when higher is better, else
    0), mean and median, each with its stratified-bootstrap interval (``_lo``, ``_hi``),
    and the numbers of runs and tasks. ``scores``: ``{method: [runs, tasks]}``."""
    from rliable import metrics

    scores = _checked(scores)
    sign = 1.0 if higher_is_better else -1.0
    gamma = (1.0 if higher_is_better else 0.0) if gamma is None else float(gamma)

    def stats(x: np.ndarray) -> np.ndarray:
        return np.array(
            [
                metrics.aggregate_iqm(x),
                metrics.aggregate_optimality_gap(x, sign * gamma),
                metrics.aggregate_mean(x),
                metrics.aggregate_median(x),
            ]
        )

    rows = []
    for name, a in scores.items():
        row: dict[str, object] = {"method": name, "runs": a.shape[0], "tasks": a.shape[1]}
        point = stats(sign * a)
        lo, hi = _bootstrap(
            [sign * a], lambda x: _batched_stats(x, sign * gamma), reps, ci, seed, task_bootstrap
        )
        for i, stat in enumerate(("iqm", "optimality_gap", "mean", "median")):
            # the gap is already a shortfall (≥ 0) on either scale; the rest turn back
            s = 1.0 if stat == "optimality_gap" else sign
            ends = sorted((s * lo[i], s * hi[i]))
            row.update({stat: s * point[i], f"{stat}_lo": ends[0], f"{stat}_hi": ends[1]})
        rows.append(row)
    return pd.DataFrame(rows)


def probability_of_improvement(
    x: np.ndarray,
    y: np.ndarray,
    higher_is_better: bool = True,
    reps: int = REPS,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(P(X > Y), low, high)``: the probability that a run of X beats a run of Y on a
    task, averaged over tasks (ties count ½; "beats" is "is lower" when lower is better),
    and its stratified-bootstrap interval. ``x``, ``y``: ``[runs, tasks]``, the same tasks."""
    from rliable import metrics

    checked = _checked({"x": x, "y": y})
    a, b = checked["x"], checked["y"]
    if a.shape[1] != b.shape[1]:
        raise ResultsError(f"x and y must have the same tasks: {a.shape[1]} vs {b.shape[1]}")
    sign = 1.0 if higher_is_better else -1.0
    p = metrics.probability_of_improvement(sign * a, sign * b)
    lo, hi = _bootstrap([sign * a, sign * b], _batched_improvement, reps, ci, seed)
    return float(p), float(lo[0]), float(hi[0])


def performance_profile(
    scores: Scores,
    taus: Iterable[float] | None = None,
    higher_is_better: bool = True,
    reps: int = REPS,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """The score distribution of each method: per τ, the fraction of its runs × tasks
    scoring above τ (below, when lower is better), with a stratified-bootstrap band.
    ``taus`` default: 51 points over the range of all scores. Columns: method, tau,
    fraction, lo, hi."""

    scores = _checked(scores)
    if taus is None:
        pooled = np.concatenate([a.ravel() for a in scores.values()])
        taus = np.linspace(pooled.min(), pooled.max(), 51)
    taus = np.asarray(list(taus), np.float64)
    sign = 1.0 if higher_is_better else -1.0

    def profile(x: np.ndarray) -> np.ndarray:  # x [runs, tasks], or [reps, runs, tasks]
        return (x.reshape(*x.shape[:-2], -1, 1) > sign * taus).mean(axis=-2)

    frames = []
    for name, a in scores.items():
        lo, hi = _bootstrap([sign * a], profile, reps, ci, seed)
        frames.append(
            pd.DataFrame(
                {"method": name, "tau": taus, "fraction": profile(sign * a), "lo": lo, "hi": hi}
            )
        )
    return pd.concat(frames, ignore_index=True)


def final_scores(
    df: pd.DataFrame,
    metric: str,
    by: str = "run",
    task: str | None = None,
    last: int | None = None,
    layer: str = "",
) -> dict[str, np.ndarray]:
    """Score arrays ``{value of by: [seeds, tasks]}`` from a metrics table: each seed's
    mean of ``metric`` over the last ``last`` bins (default: the last 10%, at least one).
    ``by``: the column naming the methods compared (``run`` for :func:`load_many`'s
    tables, ``method`` for a study's); ``task``: the column whose values are the tasks
    (e.g. ``benchmark`` or a condition of a study; None: one task). Every method must have
    the same seeds on every task; diverged seeds (NaN) make an error here, not a number."""
    rows = select(df, metric, layer)
    for column in (by, task):
        if column is not None and column not in rows.columns:
            raise ResultsError(f"no column {column!r} in the table: {list(rows.columns)}")
    keys = [k for k in ["run", *swept_columns(rows)] if k in rows.columns]
    parts = []
    for _, g in rows.groupby(keys, sort=False, observed=True, dropna=False):
        steps = np.sort(g["step"].unique())
        window = steps[-last_window(len(steps), last) :]
        parts.append(g[g["step"].isin(window)])
    windowed = pd.concat(parts)
    task_key = task or "_task"
    windowed = windowed.assign(_task="all") if task is None else windowed
    others = [k for k in keys if k not in (by, task_key)]
    runs = windowed[[by, task_key, *others]].drop_duplicates()
    several = runs.groupby([by, task_key], sort=False, observed=True).size()
    if (several > 1).any():
        (name, where), n = next((k, v) for k, v in several.items() if v > 1)
        raise ResultsError(
            f"{by}={name!r} has {n} runs (cells or swept values) on task {where!r}: a score "
            f"array holds one run's seeds per task; select one run per {by} first (e.g. "
            "each method's best cell, report.best.csv), or compare by='run'"
        )
    per_seed = windowed.groupby([by, task_key, "seed"], sort=False, observed=True)["value"].mean()
    out = {}
    for name, g in per_seed.groupby(level=0, sort=False, observed=True):
        table = g.droplevel(0).unstack(task_key)
        if table.isna().any().any():
            missing = int(table.isna().sum().sum())
            raise ResultsError(
                f"{by}={name!r}: {missing} (seed, task) scores missing or not finite — every "
                "method needs the same seeds on every task, with finite values"
            )
        out[str(name)] = table.to_numpy(np.float64)
    return out


def _task_length(config: dict) -> int | None:
    """Steps per task: the run's ``report.steps_per_task``, else an RL benchmark's
    ``change_every`` (a change then waits for the episode to end: approximate)."""
    report = config.get("report", {})
    if report.get("steps_per_task"):
        return int(report["steps_per_task"])
    every = config.get("benchmark_config", {}).get("change_every")
    return int(every) if every else None


def task_end_scores(
    runs: str | os.PathLike | Iterable[str | os.PathLike],
    metric: str | None = None,
    layer: str = "",
    last: int = 1,
) -> pd.DataFrame:
    """Each seed's ``metric`` at the end of each task: the mean of the last ``last`` bins of
    the task, per run directory (and swept values). Columns: run, [swept settings], seed,
    task (1-based), step (the task's last bin), value. ``metric`` defaults to the runs'
    reported one (accuracy, return, …).

    Tasks come from the run's config: ``report.steps_per_task`` or ``task_starts``
    (supervised task streams), or ``change_every`` (RL: a new environment after that many
    steps, at the next episode's end, so a task boundary is approximate to one episode)."""
    dirs = [Path(runs)] if isinstance(runs, str | os.PathLike) else [Path(r) for r in runs]
    configs = {_run_name(d): read_config(d) for d in dirs}
    df = load_many(dirs)
    metric = metric or reported_metric(list(configs.values()), df)
    rows = select(df, metric, layer)
    parts = []
    for run, g in rows.groupby("run", sort=False, observed=True):
        config = configs[run]
        report = config.get("report", {})
        steps = g["step"].to_numpy()
        task = task_of_step(steps, report)
        if task is None:
            length = _task_length(config)
            if length is None:
                raise ResultsError(
                    f"run {run!r} has no tasks (no steps_per_task, task_starts or change_every)"
                )
            task = (steps + length - 1) // length  # the bin ending at a change: the old task
        parts.append(g.assign(task=task.astype(np.int64)))
    tasks = pd.concat(parts, ignore_index=True)
    keys = ["run", *swept_columns(rows), "seed", "task"]
    keys = [k for k in keys if k in tasks.columns]
    out = []
    for _, g in tasks.groupby(keys, sort=False, observed=True, dropna=False):
        end = np.sort(g["step"].unique())[-last:]
        tail = g[g["step"].isin(end)]
        out.append({**{k: g[k].iloc[0] for k in keys}, "step": int(end[-1]),
                    "value": float(tail["value"].mean())})  # fmt: skip
    return pd.DataFrame(out, columns=[*keys, "step", "value"])
