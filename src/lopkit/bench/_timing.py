"""Timing helpers shared by the benchmarks of `lopkit bench` (imports none of them)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from lopkit._experiment import make_experiment

BIN = 10_000


def chunk_throughput(program, seed_ids, bins: int, repeats: int = 1) -> float:
    """Best-of-``repeats`` seed-steps/s of ``program`` over ``bins`` bins per call.

    One chunk runs first (compilation and warm-up excluded); each timed call continues the
    same state, so every call runs new steps.
    """
    state = program.init(jnp.asarray(seed_ids, jnp.int32))
    state, errors, _ = program.chunk(state, jnp.int32(0), bins)
    jax.block_until_ready((state, errors))
    best = 0.0
    for r in range(repeats):
        start = time.perf_counter()
        state, errors, _ = program.chunk(state, jnp.int32(bins * (r + 1)), bins)
        jax.block_until_ready((state, errors))
        steps = bins * program.bin_size * len(seed_ids)
        best = max(best, steps / (time.perf_counter() - start))
    return best


def throughput(
    method: str, seeds: int, bins: int = 5, metrics: tuple[str, ...] = (), repeats: int = 2
) -> float:
    """Best-of-``repeats`` seed-steps/s on slowly-changing regression (compile excluded)."""
    metrics_every = BIN if metrics else 0
    e = make_experiment(
        "scr", method, seeds=seeds, steps=BIN * bins, metrics=metrics, metrics_every=metrics_every
    )
    program, _ = e.build()
    return chunk_throughput(program, e.seed_ids, bins, repeats)
