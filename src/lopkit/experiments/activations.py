"""The activation study of slowly-changing regression (Dohare et al. 2024, Extended Data
Fig. 2b): backprop with every activation at two step sizes.

For each activation in :data:`ACTIVATIONS` and step size in :data:`STEP_SIZES`, backprop
runs the ``scr`` benchmark (its defaults: the official target, all flipping bits redrawn
every 10,000 steps, 20→5→1 learner, SGD, batch 1) for 1M steps over 100 seeds. The
``linear`` learner is the official code's linear agent (``cfg/sgd/bp/linear.json``:
``"agent": "linear", "num_features": 0``): a 20→1 linear regression, no hidden layer.
The paper: every non-linear activation loses plasticity (its error rises over the run,
most past the linear learner's), while the linear learner stays near its own error of
~0.9; tanh starts lower (~0.4) and rises to ~0.9.

Runs go to ``<out>/<activation>-lr<step size>`` (a finished run there with the same
settings is reused, an interrupted one finished), the figure to ``<out>/activations.png``
(one panel per step size, mean ± standard error over seeds per bin), and the table of
first vs last 10% of the run is printed and written to ``<out>/early_late.csv``.

From the shell::

    python -m lopkit.experiments.activations --out runs/activations      # 100 seeds × 1M
    python -m lopkit.experiments.activations --seeds 10 --steps 200000   # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from lopkit._errors import LopkitError
from lopkit._experiment import make_experiment, run_or_reuse
from lopkit.results import early_late, format_step, load_many, summarize

ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "leaky_relu", "swish", "selu", "linear")
STEP_SIZES = (0.01, 0.001)


def run_name(activation: str, lr: float) -> str:
    return f"{activation}-lr{lr:g}"


def settings_of(activation: str, lr: float) -> dict:
    """``--set``-style settings of one run; ``linear`` is the official linear learner."""
    hidden = {"hidden": ()} if activation == "linear" else {}
    return {"activation": activation, "lr": lr, **hidden}


def run_study(
    out: str | Path = "runs/activations",
    seeds: int = 100,
    steps: int = 1_000_000,
    activations: tuple[str, ...] = ACTIVATIONS,
    step_sizes: tuple[float, ...] = STEP_SIZES,
    progress: bool = False,
    echo: bool = True,
    replace: bool = False,
    **run,
) -> pd.DataFrame:
    """Run (or reuse) every (activation, step size) run; return the early/late table with
    columns activation, lr, early, early_se, late, late_se, n_seeds, early_n, late_n.
    ``run``: further RunConfig fields (e.g. ``bin_size``). A run in ``out`` with other
    settings (seeds, steps, …) is refused unless ``replace`` (then replaced, saying so)."""
    out = Path(out)
    dirs = []
    for lr in step_sizes:
        for activation in activations:
            experiment = make_experiment(
                "scr",
                "backprop",
                settings_of(activation, lr),
                seeds=seeds,
                steps=steps,
                metrics=(),
                **run,
            )
            run_dir = out / run_name(activation, lr)
            start = time.perf_counter()
            run_or_reuse(experiment, run_dir, progress=progress, replace=replace)
            if echo:
                print(f"  {run_dir.name:<18} {time.perf_counter() - start:6.1f} s", flush=True)
            dirs.append(run_dir)
    df = load_many(dirs)
    table = early_late(df, "mse", fraction=0.1)
    keys = {run_name(a, lr): (a, lr) for lr in step_sizes for a in activations}  # in run order
    table.insert(0, "activation", [keys[r][0] for r in table["run"]])
    table.insert(1, "lr", [keys[r][1] for r in table["run"]])
    order = {run_name(a, lr): i for i, (a, lr) in enumerate(keys.values())}
    table = table.sort_values("run", key=lambda r: r.map(order)).drop(columns="run")
    table.to_csv(out / "early_late.csv", index=False)
    figure(df, activations, step_sizes, out / "activations.png", seeds)
    if echo:
        print(format_table(table, steps))
    return table


def figure(df, activations, step_sizes, path: Path, seeds: int) -> Path:
    """One panel per step size; a line per activation (mean ± standard error per bin)."""
    summary = summarize(df, "mse")
    fig = Figure(figsize=(4.5 * len(step_sizes), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(step_sizes), squeeze=False, sharey=True)[0]
    for ax, lr in zip(axes, step_sizes, strict=True):
        for i, activation in enumerate(activations):
            s = summary[summary["run"] == run_name(activation, lr)]
            mean, se = s["mean"].to_numpy(), np.nan_to_num(s["se"].to_numpy())
            style = {"color": "k", "linestyle": "--"} if activation == "linear" else {}
            color = style.pop("color", f"C{i % 10}")
            ax.plot(s["step"], mean, color=color, linewidth=1.3, label=activation, **style)
            ax.fill_between(s["step"], mean - se, mean + se, color=color, alpha=0.2, lw=0)
        ax.set_title(f"step size {lr:g}", fontsize="medium")
        ax.set_xlabel("step")
        ax.xaxis.set_major_formatter(FuncFormatter(format_step))
        ax.grid(True, alpha=0.3, linewidth=0.5)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("mean squared error (per 10k-step bin)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", frameon=False)
    fig.suptitle(
        f"Slowly-changing regression, backprop: mean ± standard error over {seeds} seeds",
        fontsize="medium",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def format_table(table: pd.DataFrame, steps: int) -> str:
    lines = [
        f"mean squared error over seeds (± standard error), first vs last 10% of {steps:,} steps:",
        f"  {'activation':<11} {'lr':>6} {'early':>16} {'late':>16}",
    ]
    for r in table.itertuples():
        lines.append(
            f"  {r.activation:<11} {r.lr:>6g} {r.early:8.3f} ± {r.early_se:5.3f} "
            f"{r.late:8.3f} ± {r.late_se:5.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/activations")
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--activations", default=",".join(ACTIVATIONS))
    p.add_argument("--step-sizes", default=",".join(f"{lr:g}" for lr in STEP_SIZES))
    p.add_argument("--progress", action="store_true")
    p.add_argument(
        "--replace", action="store_true", help="replace runs in --out that have other settings"
    )
    args = p.parse_args(argv)
    try:
        run_study(
            args.out,
            args.seeds,
            args.steps,
            tuple(a for a in args.activations.split(",") if a),
            tuple(float(v) for v in args.step_sizes.split(",") if v),
            progress=args.progress,
            replace=args.replace,
        )
    except LopkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
