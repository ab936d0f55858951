"""Shared by the slow tests that run a benchmark's ``quick`` preset whole, in memory."""

import jax.numpy as jnp
import numpy as np

from lopkit._experiment import make_experiment
from lopkit.engine._program import Program
from lopkit.experiments import load_preset, preset_settings


def run_quick_preset(
    benchmark: str, method: str, **overrides
) -> tuple[Program, np.ndarray, np.ndarray]:
    """``benchmark``'s quick preset for ``method`` with ``overrides`` on its settings, every
    bin in one chunk: (program, errors [seeds, bins], probes [seeds, bins, len(labels)]).
    The preset must have at least 10 seeds (the tests' statistics assume it)."""
    settings = preset_settings(load_preset(benchmark, "quick"), [method])
    e = make_experiment(benchmark, method, {**settings, **overrides})
    assert e.run.seeds >= 10
    program, _ = e.build()
    state = program.init(jnp.asarray(e.seed_ids))
    _, errors, probes = program.chunk(state, jnp.int32(0), e.run.steps // e.run.bin_size)
    return program, np.asarray(errors), np.asarray(probes)
