"""Warm-start studies: a variant against the fresh-start baseline, final accuracies compared.

``compare("fraction")`` runs the ``warmstart`` benchmark twice with the same settings and
seeds — once with the variant (N1 steps of modified data, then N2 clean) and once with
``variant=none`` (clean data for all N1 + N2 steps) — and returns, per run, the final
training accuracy (online accuracy of the last bin) and test accuracy (clean test split at
the last step), mean ± standard error over seeds, with the difference to the baseline.
Ash & Adams (2020) find the warm-started network generalizes worse than the fresh one at
equal training accuracy; Igl et al. (2021) and Achille et al. (2017) find the same after
noisy labels or blurred inputs early in training.

From the shell::

    python -m lopkit.experiments.warmstart fraction --preset quick --seeds 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lopkit._errors import LopkitError
from lopkit._experiment import make_experiment, run_or_reuse
from lopkit.experiments._presets import load_preset, preset_settings
from lopkit.methods import parse_method
from lopkit.results import load

BASELINE = "none"


def final_accuracies(run_dir: str | Path) -> dict[str, float]:
    """Final train / test accuracy of a run, mean and standard error over seeds."""
    df = load(run_dir)
    out: dict[str, float] = {}
    for name, metric in (("train", "accuracy"), ("test", "test_accuracy")):
        rows = df[(df["metric"] == metric) & (df["layer"] == "")]
        last = rows[rows["step"] == rows["step"].max()]["value"].to_numpy()
        out[name] = float(np.nanmean(last)) if last.size else float("nan")
        out[f"{name}_se"] = (
            float(np.nanstd(last, ddof=1) / np.sqrt(last.size)) if last.size > 1 else 0.0
        )
    return out


def compare(
    variant: str = "fraction",
    method: str = "backprop",
    settings: dict[str, Any] | None = None,
    preset: str | None = None,
    out: str | Path = "runs/warmstart",
    progress: bool = False,
    echo: bool = True,
    replace: bool = False,
    **run: Any,
) -> pd.DataFrame:
    """Run ``variant`` and the fresh-start baseline; the table of final accuracies.

    settings: ``--set``-style settings for both runs (over the preset's, if ``preset``);
    run: RunConfig fields (seeds=, steps=…). Runs go to ``out/<variant>-<method>`` and
    ``out/none-<method>``; a run already there with the same configuration is reused (or
    finished, if it was interrupted); one with another configuration is refused (a ConfigError
    naming it and the differing settings), or with ``replace`` replaced, saying so. Returns
    one row per run: variant, train, train_se, test, test_se, train_gap, test_gap
    (variant − baseline; 0 for the baseline).
    """
    base = preset_settings(load_preset("warmstart", preset), parse_method(method)) if preset else {}
    base.update(settings or {})
    rows = []
    for v in dict.fromkeys((variant, BASELINE)):  # once if variant is the baseline
        experiment = make_experiment("warmstart", method, {**base, "variant": v}, **run)
        run_dir = Path(out) / f"{v}-{experiment.method}"
        run_or_reuse(experiment, run_dir, progress, replace=replace)
        rows.append({"variant": v, **final_accuracies(run_dir)})
    table = pd.DataFrame(rows)
    reference = table[table["variant"] == BASELINE].iloc[0]
    table["train_gap"] = table["train"] - reference["train"]
    table["test_gap"] = table["test"] - reference["test"]
    if echo:
        print(format_table(table))
    return table


def format_table(table: pd.DataFrame) -> str:
    lines = [f"  {'variant':<14} {'final train':>17} {'final test':>17} {'test − fresh':>13}"]
    for r in table.itertuples():
        lines.append(
            f"  {r.variant:<14} {r.train:8.4f} ± {r.train_se:6.4f} "
            f"{r.test:8.4f} ± {r.test_se:6.4f} {r.test_gap:+13.4f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variant", help="fraction, growing, noisy_labels, wrong_labels, blur")
    p.add_argument("--method", default="backprop")
    p.add_argument("--preset", default="quick")
    p.add_argument("--seeds", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="runs/warmstart")
    p.add_argument(
        "--replace", action="store_true", help="replace runs in --out that have other settings"
    )
    args = p.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.set)
    try:
        compare(
            args.variant,
            args.method,
            settings,
            args.preset,
            args.out,
            seeds=args.seeds,
            replace=args.replace,
        )
    except LopkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
