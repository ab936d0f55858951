"""What each remedy costs: seed-steps per second on slowly-changing regression, K seeds,
and on the permuted-inputs quick preset (a 100-unit MLP on digits, 10 seeds mapped one
after another: a different regime, where per-step overhead of a remedy shows).

Every registered remedy (at its slowly-changing-regression defaults, metrics off) runs as
one compiled program over K seeds. Compilation is excluded: one chunk of ``steps`` steps
is run first (compile + warm-up), then the next chunk of ``steps`` steps is timed, ended by
``jax.block_until_ready``. Reported: seed-steps per second (K × steps / seconds) and the
ratio to backprop's (docs/design.md §14: CBP within 2× of backprop).

    python -m lopkit.bench.remedies --seeds 100 --steps 200000
    python -m lopkit.bench.remedies --permuted --only backprop cbp
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from lopkit._experiment import make_experiment
from lopkit.bench import chunk_throughput
from lopkit.methods import REMEDIES


def remedy_throughput(
    method: str, k: int = 100, steps: int = 100_000, bin_size: int = 10_000
) -> float:
    """Seed-steps per second of ``method`` on slowly-changing regression (compile excluded)."""
    if steps % bin_size:
        raise ValueError(f"steps ({steps}) must be a multiple of bin_size ({bin_size})")
    n_bins = steps // bin_size
    experiment = make_experiment(
        "scr", method, seeds=k, steps=2 * steps, bin_size=bin_size, metrics=()
    )
    program, _ = experiment.build()
    return chunk_throughput(program, experiment.seed_ids, n_bins)


def remedy_costs(
    k: int = 100, steps: int = 100_000, names: Iterable[str] | None = None
) -> list[tuple[str, float, float]]:
    """``[(remedy, seed_steps_per_s, relative_to_backprop)]`` for every registered remedy
    (or ``names``), backprop first; relative = throughput / backprop's (1 = as fast)."""
    names = [n for n in (names or REMEDIES) if n != "backprop"]
    base = remedy_throughput("backprop", k, steps)
    rows = [("backprop", base, 1.0)]
    for name in names:
        rate = remedy_throughput(name, k, steps)
        rows.append((name, rate, rate / base))
    return rows


PERMUTED_REMEDIES = ("backprop", "cbp", "l2", "shrink_perturb")


def permuted_quick_costs(
    names: Iterable[str] = PERMUTED_REMEDIES, bins: int = 5, repeats: int = 2
) -> list[tuple[str, float, float]]:
    """``[(remedy, seed_steps_per_s, relative_to_backprop)]`` on ``lopkit run permuted
    --preset quick --method <remedy>`` with probes off (best of ``repeats`` chunks of
    ``bins`` tasks, compile excluded): the remedy's own cost on that benchmark."""
    from lopkit.experiments import load_preset, preset_settings

    rows = []
    for name in names:
        settings = preset_settings(load_preset("permuted", "quick"), [name])
        settings["metrics"] = ""
        experiment = make_experiment("permuted", name, settings)
        program, _ = experiment.build()
        rows.append((name, chunk_throughput(program, experiment.seed_ids, bins, repeats)))
    base = dict(rows).get("backprop", rows[0][1])
    return [(name, rate, rate / base) for name, rate in rows]


def format_costs(rows: list[tuple[str, float, float]]) -> str:
    lines = [f"{'remedy':<26}{'seed-steps/s':>14}{'vs backprop':>13}"]
    lines += [f"{name:<26}{rate:>14,.0f}{rel:>12.2f}×" for name, rate, rel in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="K seeds run as one program")
    parser.add_argument("--steps", type=int, default=100_000, help="timed steps per seed")
    parser.add_argument("--only", nargs="*", help="remedies to measure (default: all)")
    parser.add_argument(
        "--permuted", action="store_true", help="the permuted quick preset instead of scr"
    )
    args = parser.parse_args(argv)
    if args.permuted:
        print(format_costs(permuted_quick_costs(args.only or PERMUTED_REMEDIES)))
        return
    print(format_costs(remedy_costs(args.seeds, args.steps, args.only)))


if __name__ == "__main__":
    main()
