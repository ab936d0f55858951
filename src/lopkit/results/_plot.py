"""Figures in the paper's style: one line per run, mean ± one standard error shaded.

Dohare et al. (2024) show, per bin, the mean over seeds with a band of one standard error;
clean axes (no top/right spines), a light grid, steps written as 1M, 250k. Figures are
drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas — no pyplot, no display,
and the process-wide matplotlib backend is left untouched — and saved atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ._aggregate import select, summarize
from ._io import atomic_write_bytes
from ._store import _run_name, load_many, read_config

__all__ = ["format_step", "plot_grid", "plot_runs"]

Runs = pd.DataFrame | str | os.PathLike | Iterable[str | os.PathLike]

_PRETTY = {
    "mse": "Mean squared error",
    "accuracy": "Accuracy",
    "test_accuracy": "Test accuracy",
    "train_accuracy": "Training accuracy",
    "dead_fraction": "Fraction of dead units",
    "dormant_fraction": "Fraction of dormant units",
    "inactive_fraction": "Fraction of inactive units",
    "linear_fraction": "Fraction of linearized units",
    "effective_rank": "Effective rank",
    "srank": "Stable rank",
    "weight_magnitude": "Weight magnitude",
    "diverged": "Diverged seeds",
}


def format_step(x: float, pos: int | None = None) -> str:
    """Tick label for a step count: 0, 500, 1.5k, 250k, 1M, 2.5M, 1B."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _label_of(metric: str, layer: str) -> str:
    name = _PRETTY.get(metric, metric)
    return f"{name} ({layer})" if layer else name


def _config_value(config: dict, key: str, run: str):
    """``config[a][b]`` for ``key = "a.b"``; ValueError naming the keys there if absent."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = sorted(node) if isinstance(node, dict) else []
            raise ValueError(
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
            raise ValueError(
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
        else:
            configs = [read_config(d) for d in dirs]
            labels = {
                r: str(_config_value(c, label_key, r)) for r, c in zip(order, configs, strict=True)
            }
    counts = pd.Series(list(labels.values())).value_counts()
    labels = {r: (f"{lab} ({r})" if counts[lab] > 1 else lab) for r, lab in labels.items()}
    return df, order, labels, dirs


def _style(ax, logy: bool) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, alpha=0.3, linewidth=0.5)
    ax.xaxis.set_major_formatter(FuncFormatter(format_step))
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")


def _draw(ax, df, metric: str, layer: str, order: Sequence[str], labels: dict) -> None:
    """One line per run (mean over seeds) with a ±1 standard error band."""
    summary = summarize(df, metric, layer)
    for i, run in enumerate(order):
        s = summary[summary["run"] == run]
        if s.empty:
            continue
        step = s["step"].to_numpy()
        mean = s["mean"].to_numpy()
        se = np.nan_to_num(s["se"].to_numpy())
        color = f"C{i % 10}"
        ax.plot(
            step,
            mean,
            color=color,
            linewidth=1.5,
            label=labels[run],
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
        raise ValueError("out is required unless exactly one run directory is plotted")
    return dirs[0] / "plots" / f"{name}.png"


def plot_runs(
    runs: Runs,
    metric: str = "mse",
    layer: str = "",
    out: str | os.PathLike | None = None,
    label_key: str | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    logy: bool = False,
) -> Path:
    """Plot ``metric`` at ``layer`` against step: one line per run, mean ± se over seeds.

    ``runs`` is a run directory, a list of them, or a metrics frame (from ``load_many``).
    The legend label of a run is its directory name, or, with ``label_key``, a value of
    its config (dotted path, e.g. ``"method"`` or ``"optimizer.step_size"``; for a frame,
    a column). ``out`` defaults to ``<run>/plots/<metric>[_<layer>].png`` when one run
    directory is given; its parent directory is created and the format follows its suffix.

    Returns the path written. Raises ValueError listing the available metrics when
    ``metric`` is not in the table.
    """
    df, order, labels, dirs = _resolve(runs, label_key)
    select(df, metric, layer)  # fail early, listing what is there
    out = Path(out) if out is not None else _default_out(dirs, f"{metric}_{layer}".rstrip("_"))
    fig = Figure(figsize=(5.0, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _draw(ax, df, metric, layer, order, labels)
    _style(ax, logy)
    ax.set_ylabel(ylabel if ylabel is not None else _label_of(metric, layer))
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return _save(fig, out)


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
        raise ValueError("plot_grid: no metrics given")
    df, order, labels, dirs = _resolve(runs, label_key)
    for metric, layer in panels:
        select(df, metric, layer)
    out = Path(out) if out is not None else _default_out(dirs, "grid")
    fig = Figure(figsize=(4.0 * len(panels), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, layer) in zip(axes, panels, strict=True):
        _draw(ax, df, metric, layer, order, labels)
        _style(ax, logy=False)
        ax.set_title(_label_of(metric, layer), fontsize="medium")
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
