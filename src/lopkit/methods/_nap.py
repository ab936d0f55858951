"""Normalize-and-Project (NaP): LayerNorm before every nonlinearity, and weights kept at
their initial norm.

Two parts:

1. architecture: LayerNorm before each hidden activation (as the ``layernorm`` remedy;
   learned per-unit scale γ and offset β);
2. a rule after every update: each weight matrix is projected back to the norm it had at
   initialization, W ← W · ‖W₀‖_F / ‖W‖_F, and each LayerNorm's scale and offset are
   projected *jointly* to their initial norm, [γ, β] ← [γ, β] · ‖[γ₀, β₀]‖ / ‖[γ, β]‖
   (the paper's treatment of the normalization layer's affine parameters: scale and
   offset together, so the offset can still move while the pair keeps its norm).

With LayerNorm after it, a layer's output is invariant to the scale of its weights, and
its effective learning rate is α/‖W‖²: growth of ‖W‖ silently decays the learning rate.
The projection keeps ‖W‖ fixed, so the effective learning rate is the one the optimizer
is given. Biases feeding a LayerNorm are not projected (the normalization removes their
common part). ``project_output``: the output layer, which no normalization follows, is
projected too by default ("each weight matrix"); off, it is left free. The output
layer's bias is never projected.

Elsewhere: Plasticine's NaP (``plasticine/ppo_continual_dmc_base.py``,
``plasticine_normalize_and_project``) projects a normalization layer's scale and offset
jointly to norm √2 whatever the width, where the initial norm of (1, …, 1, 0, …, 0) is
√units; here the target is each pair's own initial norm.

References:
  Lyle, Zheng, Khetarpal, van Hasselt, Pascanu, Martens & Dabney. Normalization and
  effective learning rates in reinforcement learning. NeurIPS 2024 (Normalize-and-Project).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Parts, Remedy, UnitRule
from lopkit.methods._matrices import is_output, leaf_paths, weight_paths
from lopkit.nets._units import get, replace


@dataclasses.dataclass(frozen=True)
class NaPConfig:
    """Normalize-and-Project (Lyle et al. 2024)."""

    project_output: bool = field(True, "also project the output layer's weights")


def _norm(*arrays: jax.Array) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(a * a) for a in arrays))


def _factor(target: jax.Array, norm: jax.Array) -> jax.Array:
    """target / norm; 1 for a zero tensor (e.g. a head reset to zeros: nothing to rescale)."""
    return jnp.where(norm > 0, target / jnp.where(norm > 0, norm, 1.0), 1.0)


def project(params, weights, pairs, targets):
    """Every weight at ``weights`` to its target norm; every (scale, offset) pair jointly."""
    for path in weights:
        w = get(params, path)
        params = replace(params, path, w * _factor(targets["/".join(path)], _norm(w)))
    for scale_path, offset_path in pairs:
        g, b = get(params, scale_path), get(params, offset_path)
        factor = _factor(targets["/".join(scale_path)], _norm(g, b))
        params = replace(params, scale_path, g * factor)
        params = replace(params, offset_path, b * factor)
    return params


def _build(config: NaPConfig, ctx: Context) -> Parts:
    net_config = getattr(ctx.net, "config", None)
    if not hasattr(net_config, "layernorm"):
        raise ConfigError(
            "nap inserts LayerNorm before every nonlinearity, and this network has no "
            "LayerNorm option (it is available on MLPs and agents, not on the ConvNet or "
            "ResNet); use an MLP benchmark or drop nap"
        )
    shapes = jax.eval_shape(ctx.net.init, jax.random.PRNGKey(0))
    weights = [p for p in weight_paths(shapes) if config.project_output or not is_output(p)]
    pairs = [(p, p[:-1] + ("ln_offset",)) for p in leaf_paths(shapes, "ln_scale")]

    def init(params):
        norms = {"/".join(p): _norm(get(params, p)) for p in weights}
        for scale_path, offset_path in pairs:
            norms["/".join(scale_path)] = _norm(get(params, scale_path), get(params, offset_path))
        return norms

    def apply(state, params, opt_state, trace, key, step):
        return state, project(params, weights, pairs, state), opt_state

    return Parts(architecture={"layernorm": True}, unit_rule=UnitRule(init, apply))


NAP = Remedy(
    name="nap",
    summary="Normalize-and-Project: LayerNorm before each activation; weights kept at init norm",
    source="Lyle, Zheng, Khetarpal, van Hasselt, Pascanu, Martens & Dabney 2024 (NeurIPS)",
    config=NaPConfig,
    build=_build,
    parts=("architecture", "unit_rule"),
)
