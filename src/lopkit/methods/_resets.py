"""What the reset remedies share: fresh weights, and resets of the optimizer state.

Optimizer state is reached by name, never by position (indexing it by position is a
known source of silent bugs in public ReDo code): moments are the params-shaped subtrees
of the state (:func:`lopkit.nets.map_param_trees`), step
counters are the leaves named ``count`` (optax's ``ScaleByAdamState.count``, UPGD's), and
an :class:`lopkit.nets.Anchor` (L2-Init's θ₀) is a reference point, not a moment:

* a unit reset zeroes the unit's moments and sets the anchor's slice to the unit's new
  initial values (the unit's new θ₀);
* a layer reset (``reset_head``) does the same for the whole layer;
* a full reset (``reset_all``) gives the state of a fresh start: every leaf zero — which
  is what every optimizer state in lopkit (SGD, momentum, Adam, UPGD) holds at init — and
  every anchor equal to the new parameters.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lopkit._errors import ConfigError
from lopkit._seeds import any_seed
from lopkit.methods._base import Context
from lopkit.nets._units import Anchor, UnitLayer, get, map_param_trees, reset_units, zero_units

Params = dict[str, Any]


def require_unit_layers(ctx: Context, remedy: str) -> tuple[UnitLayer, ...]:
    """The network's unit layers; a clear error for a network that has none."""
    layers = tuple(ctx.net.unit_layers)
    if not layers:
        raise ConfigError(
            f"remedy {remedy!r} acts on hidden units, but this network has no hidden unit "
            "layers (e.g. an MLP without hidden layers); add a hidden layer or drop the remedy"
        )
    return layers


def fresh_incoming(
    key: jax.Array, params: Params, layer: UnitLayer, k: int | None = None
) -> jax.Array:
    """New incoming weights from the init distribution U(−b, b), b = ``layer.init_bound``.

    Returns ``[*incoming.shape[:-1], k]`` (k defaults to all the layer's units).
    """
    w_in = get(params, layer.incoming)
    shape = w_in.shape[:-1] + (layer.units if k is None else k,)
    return jax.random.uniform(key, shape, w_in.dtype, -layer.init_bound, layer.init_bound)


def reset_units_everywhere(
    params: Params,
    opt_state: Any,
    layer: UnitLayer,
    idx: jax.Array,
    active: jax.Array,
    fresh: jax.Array,
    reset_moments: bool = True,
) -> tuple[Params, Any]:
    """Reset units ``idx[j]`` (where ``active[j]``) in the params and the optimizer state.

    Params: incoming ← ``fresh[..., j]``, bias 0, extras to their reset values, outgoing 0.
    Optimizer state: the moments of all those entries 0 (kept when ``reset_moments`` is
    False, as the official PPO code's CBP does); anchors get the new values.
    """

    def renew(tree: Params) -> Params:
        return reset_units(tree, layer, idx, active, fresh)

    def moments(tree: Params) -> Params:
        return zero_units(tree, layer, idx, active) if reset_moments else tree

    params = renew(params)
    opt_state = map_param_trees(moments, opt_state, params, anchor_fn=renew)
    return params, opt_state


def reset_units_where_any(
    params: Params,
    opt_state: Any,
    layer: UnitLayer,
    idx: jax.Array,
    active: jax.Array,
    key: jax.Array,
    k: int | None = None,
    reset_moments: bool = True,
) -> tuple[Params, Any]:
    """:func:`reset_units_everywhere` with fresh weights drawn from ``key``, run only on
    steps where some seed resets a unit (``any_seed``); for the other seeds, and on other
    steps, the identity. Resets are rare: this spares the fresh draw and the scatters on
    almost every step, even under ``vmap``."""

    def reset(carry):
        p, o = carry
        fresh = fresh_incoming(key, p, layer, k)
        return reset_units_everywhere(p, o, layer, idx, active, fresh, reset_moments)

    return jax.lax.cond(any_seed(active.any()), reset, lambda c: c, (params, opt_state))


def zero_counts(opt_state: Any, where: jax.Array | bool = True) -> Any:
    """Step counters (leaves named ``count``) set to 0 where ``where`` (a bool scalar)."""

    def visit(path, leaf):
        last = path[-1] if path else None
        if isinstance(last, jax.tree_util.GetAttrKey) and last.name == "count":
            return jnp.where(where, jnp.zeros_like(leaf), leaf)
        return leaf

    return jax.tree_util.tree_map_with_path(
        visit, opt_state, is_leaf=lambda n: isinstance(n, Anchor)
    )


def replace_layer_everywhere(
    params: Params, opt_state: Any, name: str, new: Params
) -> tuple[Params, Any]:
    """Layer ``name`` ← ``new`` in the params; its moments 0 and its anchor ``new``."""
    params = {**params, name: new}

    def zero_layer(tree: Params) -> Params:
        return {**tree, name: jax.tree_util.tree_map(jnp.zeros_like, tree[name])}

    def renew(tree: Params) -> Params:
        return {**tree, name: new}

    return params, map_param_trees(zero_layer, opt_state, params, anchor_fn=renew)


def fresh_optimizer_state(opt_state: Any, params: Params) -> Any:
    """The optimizer state of a fresh start from ``params``: zeros, anchors = ``params``."""

    def visit(node: Any) -> Any:
        if isinstance(node, Anchor):
            return Anchor(params)
        return jnp.zeros_like(node)

    return jax.tree_util.tree_map(visit, opt_state, is_leaf=lambda n: isinstance(n, Anchor))
