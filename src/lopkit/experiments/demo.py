"""The demo: loss of plasticity on slowly-changing regression, and three remedies.

ReLU learner, SGD α = 0.01, the paper's problem (docs/design.md §12), 20 seeds per method, run for
1M steps each: backprop's error rises over time as its units die, while continual
backprop, L2 and shrink-and-perturb keep learning. Writes the runs to ``runs/demo/<method>``,
figures to ``runs/demo/*.png``, and prints early vs late error per method.
"""

from __future__ import annotations

import time
from pathlib import Path

from lopkit._experiment import make_experiment, run_experiment
from lopkit.results import early_late, load_many, plot_grid, plot_runs

METHODS = ("backprop", "cbp", "l2", "shrink_perturb")
FIGURES = {
    "error.png": ("mse", ""),
    "dead_units.png": ("dead_fraction", ""),
    "effective_rank.png": ("effective_rank", "hidden_0"),
}


def main(out: Path = Path("runs/demo"), seeds: int = 20, steps: int | None = None) -> int:
    steps = steps or 1_000_000
    out = Path(out)
    start = time.perf_counter()
    dirs = []
    for method in METHODS:
        experiment = make_experiment(
            "scr", method, seeds=seeds, steps=steps, metrics=("dead", "erank", "weights")
        )
        run_dir = out / method
        overwrite = (run_dir / "config.yaml").exists()
        summary = run_experiment(experiment, run_dir, overwrite=overwrite)
        print(
            f"  {method:<15} {seeds} seeds × {steps:,} steps in {summary['seconds']:6.1f} s "
            f"({summary['seed_steps_per_second']:,.0f} seed-steps/s)"
        )
        dirs.append(run_dir)
    for name, (metric, layer) in FIGURES.items():
        plot_runs(dirs, metric=metric, layer=layer, out=out / name)
    plot_grid(dirs, list(FIGURES.values()), out=out / "demo.png")
    table = early_late(load_many(dirs), "mse", fraction=0.1)
    print(
        f"\nmean squared error over seeds (± standard error), first vs last 10% of {steps:,} steps:"
    )
    print(f"  {'method':<15} {'early':>16} {'late':>16}")
    for row in table.itertuples():
        print(
            f"  {row.run:<15} {row.early:8.3f} ± {row.early_se:5.3f} "
            f"{row.late:8.3f} ± {row.late_se:5.3f}"
        )
    print(f"\nfigures: {', '.join(str(out / n) for n in [*FIGURES, 'demo.png'])}")
    print(f"demo took {time.perf_counter() - start:.0f} s")
    return 0
