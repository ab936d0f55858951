"""Deep Fourier features: each hidden unit outputs [sin(z), cos(z)].

Every hidden layer's activation is the concatenation of a sine and a cosine of the same
pre-activation, so the next layer reads 2 × width features (like CReLU). Around any z one
of the two is close to linear (the sine near 0, the cosine near ±π/2), which the paper
argues keeps the network trainable as a linear network is, while it is still nonlinear.
Hidden weights are initialized with gain 1 (LeCun-uniform bound √(3/fan_in)): sin and cos
have slope at most 1, so ReLU's √2 does not apply.

Width: the next layer reads twice the features, which adds parameters. ``match_params``
scales every hidden width by one common factor so that the parameter count is closest to
the base network's (the same rule as ``crelu.match_params``). Off by default: the widths are
kept, as in Plasticine's DFF networks (``plasticine/ppo_continual_dmc_base.py``: the hidden
width stays and the next layer reads twice it). Whether the paper halves the units we could
not confirm from its text here; ``match_params`` gives the equal-parameter comparison.

The paper combines deep Fourier features with regularization (its abstract: "combined
with regularization"); compose with one, e.g. ``dff+l2`` or ``dff+spectral``.

References:
  Lewandowski, Schuurmans & Machado. Plastic learning with deep Fourier features.
  ICLR 2025 (arXiv 2410.20634).
"""

from __future__ import annotations

import dataclasses

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Parts, Remedy
from lopkit.methods._crelu import matched_sizes


@dataclasses.dataclass(frozen=True)
class DFFConfig:
    """Deep Fourier features (Lewandowski et al. 2025). Widths kept by default."""

    match_params: bool = field(
        False, "shrink hidden widths so the parameter count matches the base network"
    )


def _build(config: DFFConfig, ctx: Context) -> Parts:
    net_config = getattr(ctx.net, "config", None)
    if not hasattr(net_config, "fourier"):
        raise ConfigError(
            "dff (deep Fourier features) is an activation option of MLPs and of the PPO "
            f"agents' networks; this benchmark's network (a {type(ctx.net).__name__}) has none"
        )
    change = {"fourier": True}
    if config.match_params:
        sizes = getattr(net_config, "sizes", None)
        if sizes is None:
            raise ConfigError("dff.match_params needs an MLP (a network config with 'sizes')")
        if not getattr(net_config, "fourier", False):  # the draft network: match it
            layernorm = bool(getattr(net_config, "layernorm", False))
            change["sizes"] = matched_sizes(tuple(sizes), layernorm)
        else:
            change["sizes"] = tuple(sizes)
    return Parts(architecture=change)


DFF = Remedy(
    name="dff",
    summary="deep Fourier features: each hidden unit outputs [sin(z), cos(z)]",
    source="Lewandowski, Schuurmans & Machado 2025 (ICLR), 'Plastic learning with deep Fourier…'",
    config=DFFConfig,
    build=_build,
    parts=("architecture",),
)
