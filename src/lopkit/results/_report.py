"""``lopkit report``: one self-contained HTML page of a study, plus CSV tables.

The page (rendered from the jinja2 template ``templates/report.html.j2``) needs nothing
but itself: figures are inlined as base64 PNG, there are no scripts, fonts or links to
fetch. Beside it, ``<name>.cells.csv`` (every cell: AUC and final performance over
seeds), ``<name>.best.csv`` (the best setting of each method per condition) and
``<name>.curves.csv`` (the learning curve of every cell, mean ± se per bin). What the
numbers mean is in :mod:`lopkit.results._study_stats`. For RL studies and studies with
at least 5 seeds per cell, a statistics section (Agarwal et al. 2021: IQM, optimality gap,
probability of improvement, performance profiles; and each task's final value against the
task: :mod:`lopkit.results._report_stats`) with ``<name>.statistics.csv`` and
``<name>.improvement.csv``.
"""

from __future__ import annotations

import base64
import datetime
import io
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lopkit._errors import ConfigError, LopkitError

from . import _report_stats
from . import _study as layout
from ._aggregate import summarize
from ._describe import metric_label
from ._io import atomic_write_text
from ._plot import _draw, _style
from ._study_stats import (
    best_cells,
    cell_table,
    higher_is_better,
    last_window,
    log_spaced,
    parse_seeds,
    seed_scores,
)

PROBES = ("dead_fraction", "effective_rank")
NOT_TUNED = ("benchmark", "method")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 5.0, height: float = 3.4, panels: int = 1):
    fig = Figure(figsize=(width * panels, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _cells_frame(study: Path, registry: dict[str, Any]) -> pd.DataFrame:
    """One row per cell of the current study.yaml: id, state, condition, swept values."""
    conditions = registry.get("condition_keys", [])
    rows = []
    for cid, cell in registry["cells"].items():
        if not cell.get("in_spec", True):
            continue
        run_dir = layout.cell_dir(study, cid)
        state = layout.cell_state(run_dir)
        condition = " · ".join(f"{k}={cell['swept'].get(k)}" for k in conditions) or "all cells"
        tuned = {k: v for k, v in cell["swept"].items() if k not in (*NOT_TUNED, *conditions)}
        rows.append(
            {
                "run": cid,
                "benchmark": cell["benchmark"],
                "condition": condition,
                "method": cell["method"],
                "settings": ", ".join(f"{k}={v}" for k, v in tuned.items() if v is not None),
                "state": state,
                "metric": layout.read_marker(run_dir, layout.DONE).get("metric"),
                "error": layout.read_marker(run_dir, layout.FAILED).get("error", ""),
                **{k: cell["swept"].get(k) for k in registry["swept_keys"] if k != "benchmark"},
            }
        )
    return pd.DataFrame(rows)


def _metrics(cells: pd.DataFrame, metric: str | None) -> dict[str, str]:
    """The compared metric of each benchmark: ``metric``, or its cells' error metric."""
    out = {}
    for benchmark, g in cells.groupby("benchmark", sort=False):
        found = g["metric"].dropna()
        out[benchmark] = metric or (found.iloc[0] if len(found) else None)
    return out


def _split_seeds(scores: pd.DataFrame, select_seeds: str | None):
    if not select_seeds:
        return scores, scores, "the reported seeds (selection favours the chosen settings)"
    chosen = parse_seeds(select_seeds)
    present = set(scores["seed"].unique().tolist())
    if not chosen & present:
        raise ConfigError(f"--select-seeds {select_seeds}: none of these seeds were run")
    if not present - chosen:
        raise ConfigError(f"--select-seeds {select_seeds} leaves no seeds to report on")
    held = scores["seed"].isin(chosen)
    seeds = ", ".join(map(str, sorted(chosen & present)))
    return scores[held], scores[~held], f"held-out seeds {seeds} (not among those reported)"


def _labels(best: pd.DataFrame) -> dict[str, str]:
    return dict(zip(best["run"], best["method"], strict=True))


def _curve_figure(df, best: pd.DataFrame, metric: str, title: str) -> str:
    fig, (ax,) = _figure()
    order = best["run"].tolist()
    _draw(ax, df[df["run"].isin(order)], metric, "", order, _labels(best))
    _style(ax, logy=False)
    ax.set_ylabel(metric_label(metric, ""))
    ax.set_title(title, fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    return _png(fig)


def _probe_figure(df, best: pd.DataFrame, probes: list[str], title: str) -> str:
    fig, axes = _figure(4.2, 3.2, len(probes))
    order = best["run"].tolist()
    sub = df[df["run"].isin(order)]
    for ax, probe in zip(axes, probes, strict=True):
        _draw(ax, sub, probe, "", order, _labels(best))
        _style(ax, logy=False)
        ax.set_title(metric_label(probe, ""), fontsize="medium")
    axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle(title, fontsize="medium")
    return _png(fig)


def _sensitivity_figure(chosen, reported, key: str, metric: str, title: str) -> str:
    """Final performance against ``key``, one line per method; at each value the method's
    other settings are those with the best AUC (on the selection seeds)."""
    fig, (ax,) = _figure()
    values = [v for v in chosen[key].dropna().unique().tolist()]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    logx = numeric and log_spaced(values)
    categories = {v: i for i, v in enumerate(sorted(values, key=str))}
    for i, (method, g) in enumerate(chosen.groupby("method", sort=False)):
        g = g[g[key].notna()]
        if g[key].nunique() < 2:
            continue
        best = best_cells(g, [key], higher=higher_is_better(metric)).sort_values(key)
        rep = reported.set_index("run").loc[best["run"]]
        x = best[key].to_numpy() if numeric else np.array([categories[v] for v in best[key]])
        y = rep["final"].to_numpy(np.float64)
        err = np.nan_to_num(np.abs(np.vstack([y - rep["final_lo"], rep["final_hi"] - y])))
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=f"C{i % 10}", label=method)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    if logx:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(list(categories.values()), [str(v) for v in categories])
    ax.set_xlabel(key)
    ax.set_ylabel(f"{metric_label(metric, '')}, final")
    ax.set_title(title, fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    return _png(fig)


def _fmt(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return "–" if not math.isfinite(x) else f"{x:.4g}"
    return "" if x is None else str(x)


def _with_interval(row, name: str, ci: str) -> str:
    mean = row[name]
    if not math.isfinite(mean):
        return "–"
    if ci == "bootstrap":
        return f"{mean:.4g} [{_fmt(row[f'{name}_lo'])}, {_fmt(row[f'{name}_hi'])}]"
    return f"{mean:.4g} ± {_fmt(row[f'{name}_se'])}"


def _render(context: dict[str, Any]) -> str:
    source = resources.files("lopkit.results").joinpath("templates/report.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source).render(**context)


def _scores(df, done: pd.DataFrame, metrics: dict[str, str], last: int | None) -> pd.DataFrame:
    """Per (cell, seed) scores, each benchmark's cells on its own metric."""
    # an unknown --metric is a ResultsError (bad input) listing the recorded ones; any other
    # error is a bug and is not reported as bad input
    return pd.concat(
        [
            seed_scores(df[df["run"].isin(g["run"])], metrics[b], last)
            for b, g in done.groupby("benchmark", sort=False)
        ],
        ignore_index=True,
    )


def _figures(df, chosen, reported, best, tuned, metrics) -> dict[str, list[dict[str, str]]]:
    """Learning curves and probes of the best cells, and sensitivity plots, per condition."""
    figures: dict[str, list[dict[str, str]]] = {"curves": [], "probes": [], "sensitivity": []}
    for condition, g in best.groupby("condition", sort=False):
        metric = metrics[g["benchmark"].iloc[0]]
        png = _curve_figure(df, g, metric, condition)
        figures["curves"].append({"title": condition, "png": png})
        recorded = set(df.loc[df["run"].isin(g["run"]), "metric"])
        probes = [p for p in PROBES if p in recorded]
        if probes:
            png = _probe_figure(df, g, probes, condition)
            figures["probes"].append({"title": condition, "png": png})
        cells = chosen[chosen["condition"] == condition]
        for key in tuned:
            if cells.groupby("method")[key].nunique().max() >= 2:
                title = f"{condition}: {key}"
                png = _sensitivity_figure(cells, reported, key, metric, title)
                figures["sensitivity"].append({"title": title, "png": png})
    return figures


def _write_tables(out: Path, reported, best, curves, selected_on: str) -> list[Path]:
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    paths = {name: out.with_name(f"{stem}.{name}.csv") for name in ("cells", "best", "curves")}
    atomic_write_text(paths["cells"], reported.drop(columns="metric").to_csv(index=False))
    atomic_write_text(paths["best"], best.assign(selected_on=selected_on).to_csv(index=False))
    atomic_write_text(paths["curves"], curves.to_csv(index=False))
    return list(paths.values())


def _rows(table: pd.DataFrame, ci: str) -> list[dict[str, str]]:
    """Table rows as text for the page: numbers to 4 digits, intervals written out."""
    return [
        {k: _fmt(v) for k, v in row.items()}
        | {
            "auc_text": _with_interval(row, "auc", ci),
            "final_text": _with_interval(row, "final", ci),
        }
        for row in table.to_dict("records")
    ]


def write_report(
    study: str | os.PathLike,
    out: str | os.PathLike | None = None,
    metric: str | None = None,
    last: int | None = None,
    ci: str = "se",
    select_seeds: str | None = None,
) -> list[Path]:
    """Write the report of ``study`` to ``out`` (default ``<study>/report.html``) and the
    CSV tables beside it; returns the paths written (the page first)."""
    if ci not in ("se", "bootstrap"):
        raise ConfigError(f"ci must be se or bootstrap, got {ci!r}")
    study = Path(study)
    registry = layout.read_cells(study)
    out = Path(out) if out is not None else study / "report.html"
    cells = _cells_frame(study, registry)
    if cells.empty:
        raise LopkitError(f"study {study} has no cells")
    done = cells[cells["state"] == "done"]
    if done.empty:
        raise LopkitError(f"study {study} has no finished cells yet (see its manifest.csv)")
    df = layout.load_study(study)
    metrics = _metrics(cells, metric)
    chosen_scores, reported_scores, selected_on = _split_seeds(
        _scores(df, done, metrics, last), select_seeds
    )
    info = done.drop(columns=["state", "error"])
    chosen = info.merge(cell_table(chosen_scores, ci), on="run")
    reported = info.merge(cell_table(reported_scores, ci), on="run")
    higher = chosen["benchmark"].map(lambda b: higher_is_better(metrics[b])).to_numpy(bool)
    best_ids = best_cells(chosen, ["condition", "method"], higher)["run"].tolist()
    best = reported.set_index("run").loc[best_ids].reset_index()
    reported["selected"] = reported["run"].isin(best_ids)

    reported_df = df[df["seed"].isin(reported_scores["seed"].unique())]
    conditions = registry["condition_keys"]
    tuned = [k for k in registry["swept_keys"] if k not in (*NOT_TUNED, *conditions)]
    figures = _figures(reported_df, chosen, reported, best, tuned, metrics)
    curves = pd.concat(
        summarize(reported_df[reported_df["run"] == r], metrics[b]).assign(run=r)
        for r, b in zip(done["run"], done["benchmark"], strict=True)
    )
    tables = _write_tables(out, reported, best, curves, selected_on)
    statistics, aggregates, improvements = _report_stats.statistics(
        study, best, reported_scores, metrics, _png
    )
    if statistics:
        tables += _report_stats.write_tables(out, aggregates, improvements)
    windows = {
        b: last_window(df.loc[df["run"].isin(g["run"]), "step"].nunique(), last)
        for b, g in done.groupby("benchmark", sort=False)
    }
    bootstrap = "with a 95% bootstrap interval [low, high]"
    context = {
        "title": registry.get("name") or study.resolve().name,
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "counts": cells["state"].value_counts().to_dict(),
        "n_cells": len(cells),
        "metrics": metrics,
        "better": {b: "higher" if higher_is_better(m) else "lower" for b, m in metrics.items()},
        "windows": windows,
        "ci": bootstrap if ci == "bootstrap" else "± standard error",
        "selected_on": selected_on,
        "best": _rows(best, ci),
        "cells": _rows(reported, ci),
        "unfinished": cells[cells["state"] != "done"].to_dict("records"),
        **figures,
        "statistics": statistics,
        "spec": (study / layout.STUDY_FILE).read_text(encoding="utf-8"),
        "csv": [p.name for p in tables],
    }
    atomic_write_text(out, _render(context))
    return [out, *tables]
