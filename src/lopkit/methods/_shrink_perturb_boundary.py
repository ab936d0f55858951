"""Shrink-and-perturb at task boundaries (Ash & Adams' warm-start remedy).

At the first step of every new task, before that step's update:
θ ← λ·θ + ε, with ε ~ N(0, σ²) independently per parameter (``noise="gaussian"``), or
ε = σ·θ' with θ' a fresh draw of the network's initialization (``noise="init"``, as
public implementations do: the perturbation then has the init's per-layer scale and zero
biases). The optimizer state is kept.

Dohare et al. (2024) use shrink-and-perturb *every step* instead (``shrink_perturb``).

References:
  Ash & Adams. On warm-starting neural network training. NeurIPS 2020, Section 4
  ("shrink, perturb, repeat"); λ and σ are swept there.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.flatten_util

from lopkit._config import field
from lopkit.methods._base import BoundaryEvent, Context, Parts, Remedy


@dataclasses.dataclass(frozen=True)
class ShrinkPerturbBoundaryConfig:
    """θ ← λθ + ε at each task start (Ash & Adams 2020). They sweep λ ∈ (0, 1) and small σ;
    the defaults λ 0.8, σ 0.01 are those of common public JAX implementations."""

    shrink: float = field(
        0.8, "λ: the parameters are multiplied by λ", unit_interval=True, axis=True
    )
    noise_std: float = field(0.01, "σ of the perturbation", nonnegative=True, axis=True)
    noise: str = field(
        "gaussian",
        "gaussian: ε ~ N(0, σ²); init: ε = σ × a fresh draw of the network's initialization",
        choices=("gaussian", "init"),
    )


def _build(config: ShrinkPerturbBoundaryConfig, ctx: Context) -> Parts:
    net = ctx.net

    def apply(params, opt_state, key):
        if config.noise == "init":
            fresh = net.init(key)
            params = jax.tree_util.tree_map(
                lambda p, q: config.shrink * p + config.noise_std * q, params, fresh
            )
        else:
            flat, unravel = jax.flatten_util.ravel_pytree(params)
            noise = jax.random.normal(key, flat.shape, flat.dtype)
            params = unravel(config.shrink * flat + config.noise_std * noise)
        return params, opt_state

    return Parts(boundary=BoundaryEvent(apply))


SHRINK_PERTURB_BOUNDARY = Remedy(
    name="shrink_perturb_boundary",
    summary="at each task start: θ ← λθ + N(0, σ²) (shrink-and-perturb at boundaries)",
    source="Ash & Adams 2020 (NeurIPS)",
    config=ShrinkPerturbBoundaryConfig,
    build=_build,
    parts=("boundary",),
)
