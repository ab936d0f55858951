"""ReGraMa: ReDo with a gradient-magnitude score instead of an activation score.

A unit that still outputs something but whose parameters no longer receive gradient has
stopped learning; ReDo's activation score misses it (and a unit whose activation is small
but whose gradient is large is not dormant). ReGraMa scores each hidden unit i by the
magnitude of the gradient its incoming weights receive,

    g_i = mean_k |∂L/∂W_in[k, i]|   (mean over the unit's incoming weights; conv: over the
                                      kernel's positions and input channels too),
    s_i = ḡ_i / ((1/U) Σ_j ḡ_j),

and every F steps recycles the units with s_i ≤ τ exactly as ReDo does (fresh incoming
weights from the init distribution, bias 0, outgoing weights 0, their optimizer moments
0; :func:`lopkit.methods._redo.recycling_rule`, shared with ReDo). ḡ_i is a running mean
over the steps (decay η, bias-corrected per unit by its age), as lopkit's ReDo keeps for
activations; ``decay_rate = 0`` uses the step's gradient alone, as the public code does.
The gradient is that of the step's update (the whole loss, after a ``gradient_fn`` such as
SAM), before any gradient part (L2, …) is added.

Where the sources differ: the issue that asked for this remedy wrote the score with
∂L/∂h_i (the gradient with respect to the unit's output); the public implementation read
here scores the incoming-weight gradient, which is what lopkit does (it is zero for a dead
ReLU unit, whose ∂L/∂h_i need not be; the per-example ∂L/∂h_i is not exposed by lopkit's
networks). That code resets the incoming weights and bias but leaves the outgoing weights,
and its threshold defaults to 0.01; lopkit recycles as ReDo does and uses ReDo's τ 0.1.

References:
  Liu et al. (2025). Measure gradients not activations! Enhancing neuronal activity in
  deep reinforcement learning. arXiv:2505.24061 (ReGraMa).
  Public code read (not copied): LucMc/continual-learning, the ``regrama`` optax
  transformation (score = mean |kernel gradient| per neuron / its layer mean; every 1000
  steps; τ 0.01).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy
from lopkit.methods._redo import recycling_rule
from lopkit.methods._resets import require_unit_layers
from lopkit.nets._units import get


@dataclasses.dataclass(frozen=True)
class ReGraMaConfig:
    """ReGraMa (Liu et al. 2025): τ 0.1 (ReDo's), every 1000 steps."""

    threshold: float = field(
        0.1, "τ: units with gradient score s_i ≤ τ are recycled", nonnegative=True, axis=True
    )
    reset_every: int = field(1000, "F: steps between recycling checks", positive=True)
    decay_rate: float = field(
        0.99,
        "η of the running mean of the gradient magnitude (0: the step's gradient only)",
        open_unit=True,
        axis=True,
    )
    reset_count: bool = field(False, "also reset the optimizer's step counts on recycling")


def gradient_magnitude(layer, h, grads) -> jnp.ndarray:
    """mean |∂L/∂W_in| per unit of ``layer`` (``[units]``) from the step's gradient."""
    g = get(grads, layer.incoming)
    return jnp.abs(g).reshape(-1, layer.units).mean(0)


def _build(config: ReGraMaConfig, ctx: Context) -> Parts:
    layers = require_unit_layers(ctx, "regrama")
    return Parts(unit_rule=recycling_rule(config, layers, gradient_magnitude, with_grads=True))


REGRAMA = Remedy(
    name="regrama",
    summary="ReDo scored by gradient magnitude: recycle units whose mean |∂L/∂W_in| score ≤ τ",
    source="Liu et al. 2025 (arXiv:2505.24061), ReGraMa",
    config=ReGraMaConfig,
    build=_build,
    parts=("unit_rule",),
)
