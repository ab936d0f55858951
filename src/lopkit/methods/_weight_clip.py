"""Weight clipping: after every update, clamp each parameter to ±κ·s_l.

s_l is the bound of layer l's initialization U(−s_l, s_l) (the network's ``bounds``); the
layer's weights and biases are clamped to [−κ·s_l, κ·s_l]. Per-unit normalization
parameters (LayerNorm scale and offset) are not clamped. Runs as a unit rule (after the
optimizer's update, before later unit rules in the listed order); it needs no unit layers.

Where implementations differ: the official code clamps with s_l = 1/√fan_in (PyTorch's
default init bound), whatever the network's actual initialization; here s_l is the bound
lopkit's networks initialize with (Kaiming-uniform: gain·√(3/fan_in)), as the paper
defines s_l. Its ``clip_last_layer`` option is ``clip_output`` here.

References:
  Elsayed, Lan, Lyle & Mahmood. Weight clipping for deep continual and reinforcement
  learning. RLC 2024 (κ = 1 in the official implementation's defaults).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Parts, Remedy, UnitRule


@dataclasses.dataclass(frozen=True)
class WeightClipConfig:
    """Weight clipping (Elsayed et al. 2024); κ 1 is the official implementation's default."""

    kappa: float = field(
        1.0,
        "κ: parameters are clamped to ±κ × their layer's init bound",
        positive=True,
        axis=True,
    )
    clip_output: bool = field(True, "also clamp the output layer")


def layer_bounds(net) -> dict[str, float]:
    """Layer name → init bound s_l (from the network's ``names`` and ``bounds``)."""
    names, bounds = net.names, net.bounds
    if names is None or bounds is None or len(names) != len(bounds):
        raise ConfigError("weight_clip needs a network that exposes its layers' init bounds")
    return dict(zip(names, bounds, strict=True))


def _build(config: WeightClipConfig, ctx: Context) -> Parts:
    bounds = layer_bounds(ctx.net)
    if not config.clip_output:
        bounds.pop(ctx.net.output_layer, None)
    skip = {path for layer in ctx.net.unit_layers for path in layer.extra}

    def clip(params):
        out = dict(params)
        for name, bound in bounds.items():
            limit = config.kappa * bound
            out[name] = {
                key: value if (name, key) in skip else jnp.clip(value, -limit, limit)
                for key, value in params[name].items()
            }
        return out

    def init(params):
        return ()

    def apply(state, params, opt_state, trace, key, step):
        return state, clip(params), opt_state

    return Parts(unit_rule=UnitRule(init, apply))


WEIGHT_CLIP = Remedy(
    name="weight_clip",
    summary="after each step clamp every weight to ±κ × its layer's init bound",
    source="Elsayed, Lan, Lyle & Mahmood 2024 (RLC)",
    config=WeightClipConfig,
    build=_build,
    parts=("unit_rule",),
)
