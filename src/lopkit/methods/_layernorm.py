"""LayerNorm before each hidden activation.

z ← (z − mean(z)) / √(var(z) + ε) · γ + β over the units of each hidden layer, with learned
per-unit γ (init 1) and β (init 0); unit resets set a unit's γ to 1 and β to 0.

References:
  Ba, Kiros & Hinton. Layer normalization. 2016.
  Lyle et al. Understanding plasticity in neural networks. ICML 2023 (LayerNorm as a
  remedy for loss of plasticity).
"""

from __future__ import annotations

from lopkit.methods._base import Context, EmptyConfig, Parts, Remedy


def _build(config: EmptyConfig, ctx: Context) -> Parts:
    return Parts(architecture={"layernorm": True})


LAYERNORM = Remedy(
    name="layernorm",
    summary="LayerNorm before each hidden activation",
    source="Lyle et al. 2023 (ICML); Ba et al. 2016",
    config=EmptyConfig,
    build=_build,
    parts=("architecture",),
)
