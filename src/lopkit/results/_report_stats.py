"""The report's statistics section: the aggregates of Agarwal et al. (2021)
(:mod:`lopkit.results._rl_stats`) of each method's best cell, and the per-task view of
loss of plasticity.

Shown for a benchmark whose metric is a return (an RL study) and for any benchmark whose
best cells have at least :data:`MIN_SEEDS` seeds each. The scores are each seed's final
performance (its mean over the final window, as in the tables above), on the reported
seeds. Per condition (a task, in the paper's terms): IQM, mean and median over seeds with
95% stratified-bootstrap intervals; the optimality gap where the metric has a natural
target (an accuracy: 1); the probability that one method's seed beats another's; a
performance profile. With several conditions, the same aggregates over all of them
together on scores normalized per condition (0: the worst seed of any method there, 1: the
best), where the optimality gap is the shortfall from the best seed. Seeds without a
finite score (diverged) are left out and counted.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._errors import ResultsError
from . import _study as layout
from ._describe import metric_label
from ._io import atomic_write_text
from ._rl_stats import (
    aggregate_scores,
    performance_profile,
    probability_of_improvement,
    task_end_scores,
)
from ._study_stats import higher_is_better

MIN_SEEDS = 5  # seeds per best cell from which the statistics are shown for any study
REPS = 2_000


def wanted(metric: str, best: pd.DataFrame) -> bool:
    """Whether a benchmark's statistics are shown: an RL metric, or ≥ MIN_SEEDS seeds."""
    return "return" in metric or (len(best) > 0 and int(best["n_seeds"].min()) >= MIN_SEEDS)


def _fmt(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:.4g}"


def _ci(row, name: str) -> str:
    return f"{_fmt(row[name])} [{_fmt(row[f'{name}_lo'])}, {_fmt(row[f'{name}_hi'])}]"


def _scores(best: pd.DataFrame, scores: pd.DataFrame) -> tuple[dict[str, np.ndarray], int]:
    """{method: [seeds, 1]} of one condition's best cells, and the seeds left out."""
    out, dropped = {}, 0
    for run, method in zip(best["run"], best["method"], strict=True):
        values = scores.loc[scores["run"] == run, "final"].to_numpy(np.float64)
        finite = values[np.isfinite(values)]
        dropped += len(values) - len(finite)
        if len(finite):
            out[str(method)] = finite[:, None]
    return out, dropped


def _profile_png(profile: pd.DataFrame, metric: str, title: str, png) -> str:
    from ._report import _figure

    fig, (ax,) = _figure(4.6, 3.2)
    for i, (method, g) in enumerate(profile.groupby("method", sort=False)):
        color = f"C{i % 10}"
        ax.plot(g["tau"], g["fraction"], color=color, label=method, linewidth=1.5)
        ax.fill_between(g["tau"], g["lo"], g["hi"], color=color, alpha=0.2, linewidth=0)
    better = "above" if higher_is_better(metric) else "below"
    ax.set_xlabel(f"{metric_label(metric, '')} (final), τ")
    ax.set_ylabel(f"fraction of seeds {better} τ")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(frameon=False, fontsize="small")
    return png(fig)


def _tasks_png(study: Path, best: pd.DataFrame, metric: str, title: str, png) -> str | None:
    """Each method's value at the end of each task vs the task (mean ± se over seeds), or
    None when the cells have no tasks."""
    from ._report import _figure

    dirs = [layout.cell_dir(study, r) for r in best["run"]]
    try:
        ends = task_end_scores(dirs, metric)
    except ResultsError:
        return None
    fig, (ax,) = _figure(4.6, 3.2)
    for i, (run, method) in enumerate(zip(best["run"], best["method"], strict=True)):
        g = ends[ends["run"] == run].groupby("task")["value"]
        mean, se = g.mean(), g.sem().fillna(0.0)
        color = f"C{i % 10}"
        ax.plot(mean.index, mean.to_numpy(), color=color, label=method, marker=".")
        ax.fill_between(mean.index, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("task")
    ax.set_ylabel(f"{metric_label(metric, '')} at the task's end")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.legend(frameon=False, fontsize="small")
    return png(fig)


def _normalized(per_condition: dict[str, dict[str, np.ndarray]], higher: bool):
    """{method: [seeds, conditions]} min-max normalized per condition (1: the best seed),
    for the methods present in every condition with the same number of seeds."""
    methods = set.intersection(*(set(s) for s in per_condition.values()))
    out: dict[str, list[np.ndarray]] = {m: [] for m in sorted(methods)}
    for scores in per_condition.values():
        pooled = np.concatenate([scores[m].ravel() for m in out])
        lo, hi = pooled.min(), pooled.max()
        for m in out:
            x = (scores[m].ravel() - lo) / (hi - lo) if hi > lo else np.ones_like(scores[m].ravel())
            out[m].append(x if higher else 1 - x)
    seeds = {m: {len(c) for c in cols} for m, cols in out.items()}
    return {m: np.stack(cols, axis=1) for m, cols in out.items() if len(seeds[m]) == 1}


def statistics(
    study: Path, best: pd.DataFrame, scores: pd.DataFrame, metrics: dict[str, str], png
) -> tuple[list[dict[str, Any]], pd.DataFrame, pd.DataFrame]:
    """The section's content per benchmark, and its two tables (aggregates; probability
    of improvement) for the CSV files."""
    sections, aggregates, improvements = [], [], []
    for benchmark, cells in best.groupby("benchmark", sort=False):
        metric = metrics[benchmark]
        if metric is None or not wanted(metric, cells):
            continue
        higher = higher_is_better(metric)
        gamma = 1.0 if "accuracy" in metric else None
        rows, pairs, figures, per_condition, dropped = [], [], [], {}, 0
        for condition, g in cells.groupby("condition", sort=False):
            by_method, n = _scores(g, scores)
            dropped += n
            if not by_method:
                continue
            per_condition[condition] = by_method
            table = aggregate_scores(by_method, higher, gamma=gamma, reps=REPS)
            table.insert(0, "condition", condition)
            if gamma is None:
                table[["optimality_gap", "optimality_gap_lo", "optimality_gap_hi"]] = math.nan
            aggregates.append(table.assign(benchmark=benchmark, scale=metric))
            rows += [
                {"condition": condition, "method": r["method"], "runs": r["runs"],
                 "iqm": _ci(r, "iqm"), "mean": _ci(r, "mean"), "median": _ci(r, "median"),
                 "gap": _ci(r, "optimality_gap") if gamma is not None else "–"}
                for r in table.to_dict("records")
            ]  # fmt: skip
            for x, y in itertools.permutations(by_method, 2):
                p, lo, hi = probability_of_improvement(by_method[x], by_method[y], higher, REPS)
                pairs.append({"condition": condition, "x": x, "y": y, "p": p, "lo": lo, "hi": hi,
                              "text": f"{p:.2f} [{lo:.2f}, {hi:.2f}]"})  # fmt: skip
            profile = performance_profile(by_method, higher_is_better=higher, reps=REPS)
            figures.append({"title": f"{condition}: performance profile",
                            "png": _profile_png(profile, metric, condition, png)})  # fmt: skip
            tasks = _tasks_png(study, g, metric, condition, png)
            if tasks:
                figures.append({"title": f"{condition}: end of each task", "png": tasks})
        across = []
        if len(per_condition) > 1:
            normalized = _normalized(per_condition, higher)
            if normalized:
                table = aggregate_scores(normalized, True, gamma=1.0, reps=REPS)
                aggregates.append(
                    table.assign(condition="all (normalized)", benchmark=benchmark, scale="0–1")
                )
                across = [
                    {"method": r["method"], "runs": r["runs"], "tasks": r["tasks"],
                     "iqm": _ci(r, "iqm"), "gap": _ci(r, "optimality_gap")}
                    for r in table.to_dict("records")
                ]  # fmt: skip
        improvements += [{**p, "benchmark": benchmark} for p in pairs]
        sections.append(
            {"benchmark": benchmark, "metric": metric, "better": "higher" if higher else "lower",
             "rows": rows, "pairs": pairs, "across": across, "figures": figures,
             "dropped": dropped, "gap_target": gamma}
        )  # fmt: skip
    agg = pd.concat(aggregates, ignore_index=True) if aggregates else pd.DataFrame()
    return sections, agg, pd.DataFrame(improvements).drop(columns="text", errors="ignore")


def write_tables(out: Path, aggregates: pd.DataFrame, improvements: pd.DataFrame) -> list[Path]:
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    paths = [out.with_name(f"{stem}.statistics.csv"), out.with_name(f"{stem}.improvement.csv")]
    atomic_write_text(paths[0], aggregates.to_csv(index=False))
    atomic_write_text(paths[1], improvements.to_csv(index=False))
    return paths
