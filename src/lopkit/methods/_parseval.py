"""Parseval regularization: keep every hidden layer's weight matrix close to orthogonal.

The loss gets λ Σ_l ‖W_l W_lᵀ − s I‖²_F over the hidden layers (W_l ``[units, fan_in]``,
one row per unit; lopkit stores its transpose ``w = W_lᵀ``, so W_l W_lᵀ = wᵀw), i.e. a
gradient part adds

    ∂/∂w λ‖wᵀw − s I‖²_F = 4λ · w (wᵀw − s I)

to every hidden weight's gradient, before the optimizer (the official code adds the penalty
to the loss, which reaches the optimizer the same way). Biases, LayerNorm parameters and the
output layer are not regularized (the official code regularizes only its ``linear_orthog``
hidden layers). Conv kernels are regularized in their unfolded form ``[kh·kw·c_in, c_out]``.

Settings and where they come from (official code ``parseval_reg/agent.py``, PPO update):

* λ (``coefficient``): 1e-3 in the official gridworld and MetaWorld configs, 1e-4 for
  LunarLander and the quadruped (``main.py`` per-environment defaults).
* s (``scale``): the official code sets s = g², g the layers' init gain (2 when no gain is
  given, ``agent.py`` lines 286–290), so the penalty is 0 on average at an orthogonal
  init of gain g. ``scale = 0`` (default) does the same with lopkit's init: s_l = g_l², g_l
  the gain of layer l's Kaiming/LeCun bound (2 for ReLU, 1 for LeCun); any other value is
  s for every layer (and may be swept).
* ``width_correction``: the official code multiplies λ by (64 / width)², because λ was
  tuned for width 64 (``agent.py`` line 315); off by default (λ as the formula writes it).
* ``normalize_rows``: the official ``parseval_norm`` ablation: each unit's incoming
  weights are normalized to norm 1 before the penalty (then only angles are regularized).
* ``groups``: subgroup Parseval (``parseval_num_groups``): only the block-diagonal of
  W Wᵀ is compared with s I (units in g equal groups; the units must divide evenly).
* ``diagonal_layers``: the paper's capacity relaxation, a learned per-unit scale c (init 1)
  and offset d (init 0) after each hidden layer, z ← z·c + d (``DiagLinear`` in the
  official ``utils.py``; on in its MetaWorld config, ``main.py``), not regularized, so the
  layer's gain is free while its directions stay orthogonal. MLPs and agents only.
* ``input_scale``: the paper's other relaxation, input scaling: a learned scalar c (init 1)
  multiplying the network's input, z_0 = (c·x) W_0 + b_0, not regularized, so the first
  layer's gain is free (official ``ScaleLayer`` in ``utils.py`` lines 88–95, built at the
  head of every network in ``agent.py`` ``build_network``, lines 710–765). An agent's
  policy and value networks get one each. MLPs and agents only.

Where the official code differs (``input_scale``): it builds the scale layer in every
network, frozen at its initial value unless ``learnable_input_scale`` (the ``input_scale``
setting, default 1, is never changed by its configs, so the frozen layer is the identity
and lopkit adds the parameter only when it learns); its quadruped config turns the
learnable scale on for every algorithm, baselines included (``main.py`` line 389, before
the per-algorithm settings): the same network without the penalty is ``parseval`` with
``coefficient=0, input_scale=true``; and with diagonal layers on, the policy's scale layer
is built without the learnable flag (``agent.py`` line 743), so only the value network's
scale learns there — lopkit learns both, as the relaxation is described.

References:
  Chung, Cherif, Meger & Precup. Parseval regularization for continual reinforcement
  learning. NeurIPS 2024. Official code github.com/wechu/parseval_reg.
  Cisse et al. Parseval networks. ICML 2017.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from lopkit._config import field, static_zero
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Parts, Remedy
from lopkit.methods._resets import require_unit_layers
from lopkit.nets._units import get, replace


@dataclasses.dataclass(frozen=True)
class ParsevalConfig:
    """Parseval regularization (Chung et al. 2024). λ 1e-3: the official gridworld and
    MetaWorld value (1e-4 for LunarLander and the quadruped)."""

    coefficient: float = field(
        1e-3, "λ: the loss gets λ Σ_l ‖W_l W_lᵀ − s I‖²_F", nonnegative=True, axis=True
    )
    scale: float = field(
        0.0,
        "s; 0: s_l = (init gain of layer l)², as the official code's s = init_gain²",
        nonnegative=True,
        axis=True,
    )
    width_correction: bool = field(
        False, "multiply λ by (64 / width)² (the official code: λ was tuned for width 64)"
    )
    normalize_rows: bool = field(
        False, "normalize each unit's incoming weights before the penalty (parseval_norm)"
    )
    diagonal_layers: bool = field(
        False,
        "add a learned per-unit scale and offset after each hidden layer (the paper's diagonal "
        "layers; the official MetaWorld default)",
    )
    groups: int = field(
        1, "subgroup Parseval: only the block-diagonal of W Wᵀ over g unit groups", positive=True
    )
    input_scale: bool = field(
        False,
        "a learned scalar (init 1) multiplying the network's input (the paper's input scaling; "
        "the official quadruped config)",
    )


def _gram_gap(m: jax.Array, scale, groups: int) -> jax.Array:
    """D = M ⊙ (mᵀm) − s I, M the block-diagonal mask of ``groups`` unit groups."""
    # einsum, not m.T @ m: XLA:CPU lowers the transposed product differently for a batch of
    # runs and for one run (one rounding apart); the einsum lowers the same way in both
    gram = jnp.einsum("ij,ik->jk", m, m)
    units = gram.shape[0]
    if groups > 1:
        block = jnp.arange(units) // (units // groups)
        gram = jnp.where(block[:, None] == block[None, :], gram, 0.0)
    return gram - scale * jnp.eye(units, dtype=gram.dtype)


def penalty(w: jax.Array, scale, groups: int = 1, normalize_rows: bool = False) -> jax.Array:
    """‖M ⊙ (wᵀw) − s I‖²_F for a weight ``w`` ``[fan_in, units]`` (M: ``groups`` blocks)."""
    m = w.reshape(-1, w.shape[-1])
    if normalize_rows:
        m = m / jnp.linalg.norm(m, axis=0, keepdims=True)
    return jnp.sum(_gram_gap(m, scale, groups) ** 2)


def penalty_gradient(w: jax.Array, scale, groups: int = 1, normalize_rows: bool = False):
    """∂ penalty / ∂w = 4 m D (D symmetric, zero off the mask), through the column
    normalization m = w_i / ‖w_i‖ when ``normalize_rows``: (g − m (m·g)) / ‖w_i‖."""
    m = w.reshape(-1, w.shape[-1])
    norm = jnp.sqrt(jnp.sum(m * m, axis=0, keepdims=True))
    norm = jnp.where(norm > 0, norm, 1.0)  # a zero column stays 0
    if normalize_rows:
        m = m / norm
    g = 4.0 * jnp.einsum("ij,jk->ik", m, _gram_gap(m, scale, groups))
    if normalize_rows:
        g = (g - m * jnp.sum(m * g, axis=0, keepdims=True)) / norm
    return g.reshape(w.shape)


def _build(config: ParsevalConfig, ctx: Context) -> Parts:
    layers = require_unit_layers(ctx, "parseval")
    if config.diagonal_layers and not hasattr(getattr(ctx.net, "config", None), "diagonal"):
        raise ConfigError(
            "parseval.diagonal_layers adds a per-unit scale to MLP and agent layers; this "
            "network (a ConvNet or ResNet) has no such option"
        )
    if config.input_scale and not hasattr(getattr(ctx.net, "config", None), "input_scale"):
        raise ConfigError(
            "parseval.input_scale adds a learned scalar on the input of MLPs and agents; "
            "this network (a ConvNet, ResNet or Q-network) has no such option"
        )
    shapes = jax.eval_shape(ctx.net.init, jax.random.PRNGKey(0))
    terms = []  # (path of the weight, its s, its λ)
    for layer in layers:
        units = layer.units
        if units % config.groups:
            raise ConfigError(
                f"parseval.groups = {config.groups} must divide every hidden width; "
                f"{layer.name} has {units} units"
            )
        # Kaiming/LeCun-uniform: b = g·√(3/fan_in), so g² = b²·fan_in/3 (fan_in: every axis
        # of the weight but the unit axis, as the init counts it)
        fan_in = math.prod(get(shapes, layer.incoming).shape[:-1])
        gain2 = layer.init_bound**2 * fan_in / 3.0
        if static_zero(config.scale):
            scale = gain2
        else:  # a number, or a traced value of a grid (where 0 means g² too)
            scale = jnp.where(config.scale == 0, gain2, config.scale)
        weight = config.coefficient
        if config.width_correction:
            weight = weight * (64.0 / units) ** 2
        terms.append((layer.incoming, scale, weight))

    def init(params):
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("parseval needs params")
        for path, scale, weight in terms:
            w = get(params, path)
            g = penalty_gradient(w, scale, config.groups, config.normalize_rows)
            updates = replace(updates, path, get(updates, path) + weight * g)
        return updates, state

    architecture = {"diagonal": True} if config.diagonal_layers else {}
    if config.input_scale:
        architecture["input_scale"] = True
    return Parts(
        architecture=architecture or None, gradient=optax.GradientTransformation(init, update)
    )


PARSEVAL = Remedy(
    name="parseval",
    summary="Parseval regularization: add λ Σ ‖W Wᵀ − s I‖²_F over the hidden layers",
    source="Chung, Cherif, Meger & Precup 2024 (NeurIPS); official code wechu/parseval_reg",
    config=ParsevalConfig,
    build=_build,
    parts=("architecture", "gradient"),
)
