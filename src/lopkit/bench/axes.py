"""A hyper-parameter axis in one program vs one program per value (docs/design.md §6, §14).

Slowly-changing regression at the paper's settings (20→5→1, batch 1, backprop), H step
sizes log-spaced over [1e-3, 3e-2] × K seeds: as one program of H·K runs (the step size a
traced per-run scalar) and as H programs of K runs (the step size a constant), each timed
from building the program to the end of its last bin — compilation included, JAX's
persistent compilation cache off — with the largest difference between the two runs'
per-bin errors (they compute the same runs). Target on 2 cores: the single program ≥ 2×
faster than the separate ones (H = 10, K = 100)::

    python -m lopkit.bench.axes [--values 10] [--seeds 100] [--steps 100000]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from lopkit._experiment import make_experiment
from lopkit.bench._timing import BIN


def _run(program, seeds, settings, bins: int) -> np.ndarray:
    state = program.init(jnp.asarray(seeds, jnp.int32), settings)
    state, errors, _ = program.chunk(state, jnp.int32(0), bins)
    return np.asarray(jax.device_get(errors))


def axis_vs_separate(
    values: int = 10, seeds: int = 100, steps: int = 100_000, method: str = "backprop"
) -> dict[str, float]:
    """Wall seconds (compilation included) of the axis as one program and as ``values``
    programs, their ratio, and the largest difference of the per-bin errors."""
    lrs = [float(f"{v:.3g}") for v in np.geomspace(1e-3, 3e-2, values)]
    run = dict(seeds=seeds, steps=steps, bin_size=BIN, metrics=(), metrics_every=0)
    bins = steps // BIN
    cache = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)  # compile both, as cold
    try:
        start = time.perf_counter()
        grid = make_experiment("scr", method, {"lr": ",".join(map(str, lrs))}, **run)
        program, _ = grid.build()
        ids, settings = grid.runs()
        together = _run(program, ids, {k: jnp.asarray(v) for k, v in settings.items()}, bins)
        one = time.perf_counter() - start

        start = time.perf_counter()
        apart = []
        for lr in lrs:
            cell = make_experiment("scr", method, {"lr": lr}, **run)
            apart.append(_run(cell.build()[0], cell.seed_ids, None, bins))
        separate = time.perf_counter() - start
    finally:
        jax.config.update("jax_enable_compilation_cache", cache)
    difference = float(np.max(np.abs(together - np.concatenate(apart))))
    return {
        "values": values,
        "seeds": seeds,
        "steps": steps,
        "one_program_s": one,
        "separate_s": separate,
        "speedup": separate / one,
        "max_error_difference": difference,
    }


def format_axis(r: dict[str, float]) -> str:
    """The lines `lopkit bench` prints for :func:`axis_vs_separate`."""
    runs = r["values"] * r["seeds"] * r["steps"]
    return (
        f"step-size axis, scr backprop, {r['values']} values × {r['seeds']} seeds × "
        f"{r['steps']:,} steps, wall time including compilation:\n"
        f"  one program {r['one_program_s']:.1f} s ({runs / r['one_program_s']:,.0f} "
        f"seed-steps/s), {r['values']} programs {r['separate_s']:.1f} s: "
        f"{r['speedup']:.2f}× faster as one program (errors differ by at most "
        f"{r['max_error_difference']:.1e})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--method", default="backprop")
    args = parser.parse_args(argv)
    print(format_axis(axis_vs_separate(args.values, args.seeds, args.steps, args.method)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
