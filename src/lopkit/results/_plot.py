"""Figures in the paper's style: one line per run, mean ± one standard error shaded.

Dohare et al. (2024) show, per bin, the mean over seeds with a band of one standard error;
clean axes (no top/right spines), a light grid, steps written as 1M, 250k. Figures are
drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas — no pyplot, no display,
and the process-wide matplotlib backend is left untouched — and saved atomically.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .._errors import ResultsError
from ._aggregate import select, summarize, swept_columns
from ._describe import metric_label, reported_metric, task_of_step, y_label
from ._io import atomic_write_bytes
from ._store import _run_name, load_many, read_config

__all__ = ["default_path", "format_step", "plot_grid", "plot_runs"]

# Figure.get_figure(root=...) exists from matplotlib 3.10 (subfigures: the root figure)
_ROOT = "root" in Figure.get_figure.__code__.co_varnames

Runs = pd.DataFrame | str | os.PathLike | Iterable[str | os.PathLike]


def format_step(x: float, pos: int | None = None) -> str:
    """Tick label for a step count: 0, 500, 1.5k, 250k, 1M, 2.5M, 1B."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _layers_of(df: pd.DataFrame, metric: str) -> list[str]:
    return sorted(df.loc[df["metric"] == metric, "layer"].unique().tolist())


def _label_of(df: pd.DataFrame, metric: str, layer: str) -> str:
    return metric_label(metric, layer, _layers_of(df, metric))


def _config_value(config: dict, key: str, run: str):
    """``config[a][b]`` for ``key = "a.b"``; ValueError naming the keys there if absent."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = sorted(node) if isinstance(node, dict) else []
            raise ResultsError(
                f"label_key {key!r}: no {part!r} in the config of run {run!r}; keys there: {keys}"
            )
        node = node[part]
    return node


def _resolve(runs: Runs, label_key: str | None) -> tuple[pd.DataFrame, list[str], dict, list]:
    """(metrics frame, run order, run -> legend label, run dirs or [] for a frame)."""
    if isinstance(runs, pd.DataFrame):
        df = runs if "run" in runs.columns else runs.assign(run="")
        order = [str(r) for r in pd.unique(df["run"])]
        dirs: list[Path] = []
        if label_key is None:
            labels = {r: r for r in order}
        elif label_key not in df.columns:
            raise ResultsError(
                f"label_key {label_key!r} is not a column of the frame "
                f"(columns: {list(df.columns)})"
            )
        else:
            first = df.groupby("run", sort=False, observed=True)[label_key].first()
            labels = {r: str(first[r]) for r in order}
    else:
        dirs = [Path(runs)] if isinstance(runs, str | os.PathLike) else [Path(d) for d in runs]
        df = load_many(dirs)
        order = [_run_name(d) for d in dirs]
        if label_key is None:
            labels = {r: r for r in order}
        elif label_key in swept_columns(df):  # a setting swept in one program: its values
            first = df.groupby("run", sort=False, observed=True)[label_key].first()
            labels = {r: r if pd.isna(first.get(r)) else str(first[r]) for r in order}
        else:
            configs = [read_config(d) for d in dirs]
            labels = {
                r: str(_config_value(c, label_key, r)) for r, c in zip(order, configs, strict=True)
            }
    counts = pd.Series(list(labels.values())).value_counts()
    labels = {r: (f"{lab} ({r})" if counts[lab] > 1 else lab) for r, lab in labels.items()}
    return df, order, labels, dirs


def _style(ax, logy: bool, x: str = "step") -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.xaxis.set_major_formatter(FuncFormatter(format_step))
    ax.set_xlabel(x)
    if logy:
        ax.set_yscale("log")


def _lines(summary: pd.DataFrame, order, labels: dict, by: str, label_key: str | None):
    """(label, rows) of every line: one per run, and within a run that swept settings in
    one program one per combination of their values, labelled by them (``label_key`` a
    swept setting: its value first, the other settings after it)."""
    swept = [c for c in swept_columns(summary) if c not in (by, "mean", "se", "n")]
    lines = []
    for run in order:
        rows = summary[summary["run"] == run]
        if rows.empty:
            continue
        groups = list(rows.groupby(swept, sort=True, dropna=False)) if swept else []
        if len(groups) <= 1:  # one configuration (e.g. a study's cell): the run's label
            lines.append((labels[run], rows))
            continue
        for values, s in groups:
            point = {k: v for k, v in zip(swept, values, strict=True) if pd.notna(v)}
            rest = ", ".join(f"{k}={_text(v)}" for k, v in point.items() if k != label_key)
            if label_key in point:
                label = _text(point[label_key]) + (f" ({rest})" if rest else "")
                label += f" [{run}]" if len(order) > 1 else ""
            else:
                label = f"{labels[run]}: {rest}" if len(order) > 1 or label_key else rest
            lines.append((label, s))
    return lines


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, int | float | np.number) else str(value)


def _draw(
    ax, df, metric: str, layer: str, order: Sequence[str], labels: dict, by="step", label_key=None
) -> None:
    """One line per run (mean over seeds) with a ±1 standard error band; a run that swept
    settings draws one line per combination of their values."""
    summary = summarize(df, metric, layer, by=by)
    for i, (label, s) in enumerate(_lines(summary, order, labels, by, label_key)):
        step = s[by].to_numpy()
        mean = s["mean"].to_numpy()
        se = np.nan_to_num(s["se"].to_numpy())
        color = f"C{i % 10}"
        ax.plot(
            step,
            mean,
            color=color,
            linewidth=1.5,
            label=label,
            marker="o" if len(s) == 1 else None,
        )
        ax.fill_between(step, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)


def _save(fig: Figure, out: Path) -> Path:
    buf = io.BytesIO()
    fmt = out.suffix.lstrip(".").lower() or "png"
    fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight")
    return atomic_write_bytes(out, buf.getvalue())


def _default_out(dirs: list[Path], name: str) -> Path:
    if len(dirs) != 1:
        raise ResultsError("out is required unless exactly one run directory is plotted")
    return dirs[0] / "plots" / f"{name}.png"


def _require_finite(df: pd.DataFrame, metric: str, layer: str) -> None:
    """ValueError when ``metric`` has no finite value at all (every seed diverged)."""
    rows = select(df, metric, layer)
    if np.isfinite(rows["value"].to_numpy()).any():
        return
    diverged = df[df["metric"] == "diverged"]
    why = (
        f"every seed diverged ({len(diverged)} 'diverged' rows, the first at step "
        f"{int(diverged['step'].min()):,})"
        if len(diverged)
        else "all its values are NaN or infinite"
    )
    raise ResultsError(f"nothing to draw: metric {metric!r} has no finite values; {why}")


def _on_tasks(df: pd.DataFrame, configs: dict, x: str, bin_tasks: int | None) -> pd.DataFrame:
    """``df`` with the column ``task`` (1-based) of every row, or each seed's values
    averaged over groups of ``bin_tasks`` tasks (``task`` = the group's last task)."""
    parts = []
    for run, rows in df.groupby("run", sort=False, observed=True):
        task = task_of_step(rows["step"].to_numpy(), configs.get(run, {}).get("report", {}))
        if task is None:
            raise ResultsError(
                f"x={x!r}: run {run!r} has no tasks (only task-based benchmarks do: permuted, "
                "binary, class_incremental); use x='step'"
            )
        parts.append(rows.assign(task=task))
    out = pd.concat(parts, ignore_index=True)
    if not bin_tasks:
        return out
    out["task"] = ((out["task"] - 1) // bin_tasks + 1) * bin_tasks
    keys = ["run", *swept_columns(out), "seed", "metric", "layer", "task"]
    # mean of the finite values of each group (a diverged seed's NaNs stay out of it)
    return out.groupby(keys, sort=False, observed=True, as_index=False, dropna=False).agg(
        step=("step", "max"), value=("value", "mean")
    )


def _caption(configs: dict, df: pd.DataFrame) -> str:
    """``permuted: mean ± standard error over 10 seeds`` (benchmarks joined when mixed)."""
    benchmarks = list(dict.fromkeys(c.get("benchmark", "?") for c in configs.values()))
    seeds = sorted({int(c.get("run", {}).get("seeds", 0)) for c in configs.values()} - {0})
    if not seeds:
        seeds = sorted(df.groupby("run", observed=True)["seed"].nunique().unique().tolist())
    n = "–".join(map(str, [seeds[0], seeds[-1]] if len(seeds) > 1 else seeds))
    where = f"{' vs '.join(benchmarks)}: " if benchmarks else ""
    return f"{where}mean ± standard error over {n} seeds"


def plot_runs(
    runs: Runs,
    metric: str | None = None,
    layer: str = "",
    out: str | os.PathLike | None = None,
    label_key: str | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    logy: bool = False,
    x: str | None = None,
    bin_tasks: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Plot ``metric`` at ``layer``: one line per run, mean ± se over seeds.

    ``runs`` is a run directory, a list of them, or a metrics frame (from ``load_many``).
    ``metric`` defaults to the runs' reported metric (``report.metric`` in config.yaml:
    mse, accuracy, …). ``x`` is ``"task"`` (the default for runs of task-based benchmarks)
    or ``"step"``; ``bin_tasks`` N averages each seed over N tasks first (the paper's
    binning). The legend label of a run is its directory name, or, with ``label_key``, a
    value of its config (dotted path, e.g. ``"method"``; for a frame, a column). The title
    (unless given; ``""`` for none) names the benchmark and "mean ± standard error over N
    seeds"; runs of different benchmarks draw a warning.

    ``ax``: draw on these matplotlib axes (a notebook's own figure, a panel of a grid);
    the figure is then saved only if ``out`` is given. Without ``ax`` a new figure is made
    and saved to ``out``, which defaults to ``<run>/plots/<metric>[_<layer>].png`` when one
    run directory is given (:func:`default_path`; else nothing is saved unless ``out`` is
    given); its parent directory is created and the format follows its suffix.

    Returns the Figure. Raises ResultsError listing the available metrics when ``metric``
    is not in the table, or when it has no finite value (every seed diverged).
    """
    df, order, labels, dirs = _resolve(runs, label_key)
    configs = {r: read_config(d) for r, d in zip(order, dirs, strict=True)} if dirs else {}
    metric = metric or reported_metric(list(configs.values()), df)
    select(df, metric, layer)  # fail early, listing what is there
    _require_finite(df, metric, layer)
    benchmarks = sorted({c.get("benchmark", "?") for c in configs.values()})
    if len(benchmarks) > 1:
        warnings.warn(
            f"overlaying runs of different benchmarks ({', '.join(benchmarks)}): their steps "
            "and values need not be comparable",
            stacklevel=2,
        )
    tasks = bool(configs) and all(
        task_of_step(np.zeros(1), c.get("report", {})) is not None for c in configs.values()
    )
    if x is None:
        x = "task" if (tasks and len(benchmarks) == 1) or bin_tasks else "step"
    if x not in ("task", "step"):
        raise ResultsError(f"x must be 'task' or 'step', got {x!r}")
    if bin_tasks is not None and (x != "task" or bin_tasks < 1):
        raise ResultsError(f"bin_tasks needs x='task' and N ≥ 1, got x={x!r}, {bin_tasks!r}")
    data = _on_tasks(select(df, metric, layer), configs, x, bin_tasks) if x == "task" else df
    if out is None and ax is None and len(dirs) == 1:
        out = _default_out(dirs, f"{metric}_{layer}".rstrip("_"))
    if ax is None:
        fig = Figure(figsize=(5.0, 3.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure(root=True) if _ROOT else ax.get_figure()
    _draw(ax, data, metric, layer, order, labels, by=x, label_key=label_key)
    _style(ax, logy, x)
    first = next(iter(configs.values()), {})
    layers = _layers_of(df, metric)
    ax.set_ylabel(
        ylabel if ylabel is not None else y_label(metric, layer, layers, first, x, bin_tasks)
    )
    caption = _caption(configs, df) if title is None else title
    if caption:
        ax.set_title(caption, fontsize="medium")
    swept = label_key if label_key in swept_columns(df) else None
    ax.legend(frameon=False, title=swept, title_fontsize="small")
    if out is not None:
        _save(fig, Path(out))
    return fig


def default_path(runs: Runs, metric: str | None = None, layer: str = "") -> Path:
    """Where :func:`plot_runs` saves a single run's figure when no ``out`` is given:
    ``<run>/plots/<metric>[_<layer>].png`` (``metric``: the run's reported one by default)."""
    dirs = [Path(runs)] if isinstance(runs, str | os.PathLike) else [Path(r) for r in runs]
    if metric is None:
        configs = [read_config(d) for d in dirs]
        named = {c.get("report", {}).get("metric") for c in configs} - {None}
        metric = named.pop() if len(named) == 1 else reported_metric(configs, load_many(dirs))
    return _default_out(dirs, f"{metric}_{layer}".rstrip("_"))


def plot_grid(
    runs: Runs,
    metrics: Sequence[tuple[str, str] | str],
    out: str | os.PathLike | None = None,
    label_key: str | None = None,
    title: str | None = None,
) -> Path:
    """A row of panels, one per ``(metric, layer)`` (a bare string means layer ``""``),
    e.g. ``[("mse", ""), ("dead_fraction", "hidden_0"), ("effective_rank", "hidden_0")]``,
    each drawn as in :func:`plot_runs`, with one legend for the figure.

    ``runs``, ``out`` and ``label_key`` are as in :func:`plot_runs` (``out`` defaults to
    ``<run>/plots/grid.png``). Returns the path written.
    """
    panels = [(m, "") if isinstance(m, str) else (m[0], m[1]) for m in metrics]
    if not panels:
        raise ResultsError("plot_grid: no metrics given")
    df, order, labels, dirs = _resolve(runs, label_key)
    for metric, layer in panels:
        select(df, metric, layer)
    out = Path(out) if out is not None else _default_out(dirs, "grid")
    fig = Figure(figsize=(4.0 * len(panels), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, layer) in zip(axes, panels, strict=True):
        _draw(ax, df, metric, layer, order, labels, label_key=label_key)
        _style(ax, logy=False)
        ax.set_title(_label_of(df, metric, layer), fontsize="medium")
    legend = {}  # label -> handle, over all panels: a run may lack some metric
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="outside lower center",
        ncol=max(1, min(len(legend), 5)),
        frameon=False,
    )
    if title:
        fig.suptitle(title)
    return _save(fig, out)
