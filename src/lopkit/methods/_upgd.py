"""Utility-based perturbed gradient descent (UPGD), first-order, global utility scaling.

For every parameter θ with gradient g, at step t (count from 1):

* utility u ← β·u + (1 − β)·(−g ⊙ θ)     (first-order estimate of the loss increase if
  the weight were removed);
* ū = sigmoid( (u / (1 − β^t)) / η ), η = max over ALL parameters of u (global scaling);
* θ ← θ·(1 − α·wd) − α·s·(g + ξ)·(1 − ū),  ξ ~ N(0, σ²) fresh every step.

Useful weights (ū → 1) are protected from change; useless ones (ū → 0) get a full step
plus noise, which keeps them plastic. Here UPGD is a *gradient* part: it outputs
s·(g + ξ)(1 − ū) + wd·θ and the benchmark's optimizer (SGD with step size α) applies it, so
with SGD the update is exactly the rule above. (With Adam or momentum in its place the
gated gradient is what that optimizer sees — a variant, not the paper's algorithm.)

Where the paper and its code differ: the paper's update has s = 1; the official README
implementation steps with 2α (``alpha=-2.0*lr``), i.e. s = 2, which makes a zero-utility
weight (ū = ½) move by α·g. ``step_scale`` chooses. A global maximum of exactly 0 (e.g. the
first step of a network whose gradients are all 0) would divide by zero; η = 1 is used then.

References:
  Elsayed & Mahmood. Addressing loss of plasticity and catastrophic forgetting in
  continual learning. ICLR 2024, Algorithm 1 (UPGD-W); official code
  github.com/mohmdelsayed/upgd (defaults wd 1e-3, β 0.999, σ 1e-3).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy


@dataclasses.dataclass(frozen=True)
class UPGDConfig:
    """UPGD (Elsayed & Mahmood 2024); defaults from the official implementation."""

    beta_utility: float = field(
        0.999, "β: decay of the utility's running average", open_unit=True, axis=True
    )
    noise_std: float = field(
        1e-3, "σ of the perturbation ξ added to g", nonnegative=True, axis=True
    )
    weight_decay: float = field(1e-3, "wd: θ ← θ(1 − α·wd) each step", nonnegative=True, axis=True)
    step_scale: float = field(
        1.0, "s: 1 as in the paper; 2 as in the official README code", positive=True, axis=True
    )


class UPGDState(NamedTuple):
    count: jax.Array  # int32 scalar: steps taken
    utility: Any  # params-shaped running average of −g ⊙ θ


def gated_gradient(
    grads: Any, utility: Any, count: jax.Array, params: Any, noise: Any, config: UPGDConfig
) -> tuple[Any, Any]:
    """(s·(g + ξ)(1 − ū) + wd·θ, new utility) for one step; ``count`` is the new step count."""
    b = config.beta_utility
    utility = jax.tree_util.tree_map(
        lambda u, g, p: b * u + (1 - b) * (-g * p), utility, grads, params
    )
    peak = jnp.max(jnp.stack([jnp.max(u) for u in jax.tree_util.tree_leaves(utility)]))
    peak = jnp.where(peak == 0, 1.0, peak)
    correction = 1.0 - b ** count.astype(jnp.float32)

    def gate(g, u, xi, p):
        scaled = jax.nn.sigmoid((u / correction) / peak)
        return config.step_scale * (g + xi) * (1.0 - scaled) + config.weight_decay * p

    return jax.tree_util.tree_map(gate, grads, utility, noise, params), utility


def upgd(config: UPGDConfig) -> optax.GradientTransformationExtraArgs:
    """UPGD as a gradient transformation (needs params and the extra argument ``key``)."""

    def init(params):
        return UPGDState(jnp.zeros((), jnp.int32), jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(updates, state, params=None, *, key: jax.Array | None = None, **extra: Any):
        if params is None or key is None:
            raise ValueError("upgd needs params and the step key (extra argument 'key')")
        flat, unravel = jax.flatten_util.ravel_pytree(updates)
        # One draw for the whole tree (per-leaf keys would cost a split per leaf).
        xi = jax.random.normal(jax.random.fold_in(key, 0x06D), flat.shape, flat.dtype)
        noise = unravel(config.noise_std * xi)
        count = state.count + 1
        out, utility = gated_gradient(updates, state.utility, count, params, noise, config)
        return out, UPGDState(count, utility)

    return optax.GradientTransformationExtraArgs(init, update)


def _build(config: UPGDConfig, ctx: Context) -> Parts:
    return Parts(gradient=upgd(config))


UPGD = Remedy(
    name="upgd",
    summary="utility-gated perturbed gradient descent: protect useful weights, perturb the rest",
    source="Elsayed & Mahmood 2024 (ICLR)",
    config=UPGDConfig,
    build=_build,
    parts=("gradient",),
)
