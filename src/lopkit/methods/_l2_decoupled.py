"""Decoupled L2 (weight decay applied after the optimizer step).

θ ← θ + u − α·λ·θ, with u the optimizer's update and α its step size: the shrink does not
pass through the optimizer (no Adam normalization of the decay term). With plain SGD it
equals coupled L2 (``l2``); with Adam it is AdamW's decay.

References:
  Loshchilov & Hutter. Decoupled weight decay regularization. ICLR 2019 (AdamW, Alg. 2).
"""

from __future__ import annotations

import dataclasses

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy
from lopkit.methods._transforms import scale_params


@dataclasses.dataclass(frozen=True)
class L2DecoupledConfig:
    """Decoupled weight decay λ (Loshchilov & Hutter 2019): θ ← θ − α·λ·θ after each step.

    Default 1e-4, the coupled ``l2`` default (they coincide under SGD); benchmarks set their own.
    """

    weight_decay: float = field(
        1e-4,
        "λ: after each step θ ← θ − α·λ·θ (α the step size)",
        nonnegative=True,
        axis=True,
    )


def _build(config: L2DecoupledConfig, ctx: Context) -> Parts:
    return Parts(update=scale_params(1.0 - ctx.learning_rate * config.weight_decay))


L2_DECOUPLED = Remedy(
    name="l2_decoupled",
    summary="decoupled weight decay: after the step, θ ← θ − α·λ·θ (AdamW-style)",
    source="Loshchilov & Hutter 2019 (ICLR)",
    config=L2DecoupledConfig,
    build=_build,
    parts=("update",),
)
