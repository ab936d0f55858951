"""SAM: sharpness-aware minimization, as a wrapper of the gradient computation.

Each step's gradient is taken at the worst nearby point of a first-order model of the loss:

    g = ∇L(θ),   ε = ρ · g / ‖g‖₂,   g_SAM = ∇L(θ + ε)

(Foret et al. 2021, Eq. 2 with p = 2 and Algorithm 1), ‖·‖₂ the norm of the whole
gradient (every parameter together). The optimizer then steps from θ with g_SAM, so SAM
composes with any optimizer and with the gradient/update parts (which see g_SAM). L is
the loss that is differentiated — the benchmark's loss plus any objective terms — on the
step's batch, with the same dropout mask in both passes; the reported loss, the online
error and the activations unit rules see are those at θ. One step costs two forward and
backward passes.

PLASTIC (Lee et al. 2023) combines SAM with LayerNorm, CReLU and a head reset:
``--method sam+layernorm+crelu+reset_head``.

References:
  Foret, Kleiner, Mobahi & Neyshabur. Sharpness-aware minimization for efficiently
  improving generalization. ICLR 2021, §2, Algorithm 1 (ρ 0.05 the value used on most
  of their image tasks).
  Lee, Cho, Kim, Kim, Choo & Kim. PLASTIC: improving input and label plasticity for
  sample efficient reinforcement learning. NeurIPS 2023.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy


@dataclasses.dataclass(frozen=True)
class SAMConfig:
    """SAM (Foret et al. 2021): ρ 0.05."""

    rho: float = field(0.05, "ρ: the radius of the perturbation ε = ρ·g/‖g‖", nonnegative=True,
                       axis=True)  # fmt: skip


def sam_gradient(rho: float):
    """The ``gradient_fn`` of SAM with radius ``rho``."""

    def gradient_fn(value_and_grad, params, key):
        (value, aux), g = value_and_grad(params)
        norm = optax.tree.norm(g)
        scale = rho / jnp.maximum(norm, 1e-12)
        perturbed = jax.tree_util.tree_map(lambda p, d: p + scale * d, params, g)
        _, g_sam = value_and_grad(perturbed)
        return (value, aux), g_sam

    return gradient_fn


def _build(config: SAMConfig, ctx: Context) -> Parts:
    return Parts(gradient_fn=sam_gradient(config.rho))


SAM = Remedy(
    name="sam",
    summary="sharpness-aware minimization: the gradient at θ + ρ·g/‖g‖",
    source="Foret et al. 2021 (ICLR); in PLASTIC, Lee et al. 2023 (NeurIPS)",
    config=SAMConfig,
    build=_build,
    parts=("gradient_fn",),
)
