"""Adam with equal decay rates β1 = β2.

Replaces the benchmark's optimizer by Adam(α, β1 = β2 = β, ε), keeping its step size α and
ε. With β2 = β1, the second-moment estimate cannot lag behind a sudden change of the
gradient scale, so a change of task does not produce the very large normalized steps
that destabilize a network trained with β2 ≫ β1.

References:
  Lyle et al. Understanding plasticity in neural networks. ICML 2023.
  Dohare et al. 2024 (Nature): PPO on changing-friction Ant with β1 = β2 = 0.99.
"""

from __future__ import annotations

import dataclasses

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy


@dataclasses.dataclass(frozen=True)
class AdamEqualBetasConfig:
    """Adam with β1 = β2 = β (Lyle et al. 2023; Dohare et al. 2024 PPO: 0.99)."""

    beta: float = field(0.99, "β1 = β2 = β", open_unit=True, axis=True)


def _build(config: AdamEqualBetasConfig, ctx: Context) -> Parts:
    return Parts(optimizer={"optimizer": "adam", "beta1": config.beta, "beta2": config.beta})


ADAM_EQUAL_BETAS = Remedy(
    name="adam_equal_betas",
    summary="Adam with β1 = β2 (0.99) in place of the benchmark's optimizer",
    source="Lyle et al. 2023 (ICML); Dohare et al. 2024 (PPO)",
    config=AdamEqualBetasConfig,
    build=_build,
    parts=("optimizer",),
)
