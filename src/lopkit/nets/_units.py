"""Units: the structure every unit-level remedy and probe works through.

A hidden *unit* of a network is a slice across several parameter arrays: its incoming
weights, its bias, optional per-unit parameters (e.g. a LayerNorm scale), and its
outgoing weights in the next layer. A network declares one :class:`UnitLayer` per hidden
layer; remedies such as continual backprop reset unit ``i`` of layer ``l`` through it,
without knowing the architecture, and find the optimizer state of those weights by the
same pytree path (never by position).

Conventions: the unit axis is the LAST axis of incoming weights (``[fan_in, units]`` or a
conv kernel ``[h, w, c_in, units]``), of biases and of per-unit parameters. Along the
``out_axis`` of the outgoing weight (0 by default) there are ``out_group * units`` entries:
entry ``p * units + i`` belongs to unit ``i`` for each of ``out_group`` groups. So

* dense → dense: ``[units, out]``, out_axis 0, out_group 1 (2 for CReLU's
  [relu(z), relu(−z)] features);
* conv → conv: the next kernel ``[kh, kw, units, c_out]``, out_axis −2, out_group 1
  (a channel is a unit);
* conv → flatten → dense: ``[H·W·units, out]`` (a row-major flatten of ``[H, W, C]``),
  out_axis 0, out_group H·W (a channel's rows at every spatial position go with it).

Optimizer states may also hold an :class:`Anchor`: a params-shaped *reference point*
(L2-Init's θ₀), not a moment. :func:`map_param_trees` leaves anchors alone unless told
what to do with them; a unit reset sets the anchor's slice of the unit to the unit's new
initial values (its new θ₀).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Path = tuple[str, ...]
Params = dict[str, Any]


class UnitLayer(NamedTuple):
    """The parameters that make up the units of one hidden layer.

    Attributes:
      name: the layer's name, e.g. ``"hidden_0"`` (also its key in activation traces).
      units: number of units.
      incoming: path of the incoming weight, unit axis last.
      bias: path of the bias ``[units]``.
      outgoing: path of the next layer's weight; rows index units. When the next layer
        reads a flattened ``[positions, units]`` map (conv → fc), ``out_group`` is the
        number of positions and the rows of unit ``i`` are ``p * units + i``.
      init_bound: bound b of the U(−b, b) distribution fresh incoming weights come from.
      extra: paths of per-unit parameters ``[units]`` reset to ``extra_reset`` values.
      extra_reset: the value each ``extra`` parameter gets on reset (e.g. 1 for a scale).
      out_group: see ``outgoing``.
      out_axis: the axis of the outgoing weight that indexes (group, unit): 0 for a dense
        next layer, −2 for a next conv kernel ``[kh, kw, units, c_out]``.
    """

    name: str
    units: int
    incoming: Path
    bias: Path
    outgoing: Path
    init_bound: float
    extra: tuple[Path, ...] = ()
    extra_reset: tuple[float, ...] = ()
    out_group: int = 1
    out_axis: int = 0


class Anchor(NamedTuple):
    """A params-shaped reference point kept in an optimizer state (e.g. L2-Init's θ₀).

    Not a moment: resets never zero it (see :func:`map_param_trees`).
    """

    params: Params


def get(tree: Params, path: Path) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def replace(tree: Params, path: Path, value: Any) -> Params:
    """A copy of nested dict ``tree`` with ``path`` set to ``value`` (shallow copies)."""
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = replace(tree[path[0]], path[1:], value)
    return out


def _set_last(array: jax.Array, idx: jax.Array, active: jax.Array, new: jax.Array) -> jax.Array:
    """array[..., idx[j]] = new[..., j] where active[j]."""
    old = array[..., idx]
    return array.at[..., idx].set(jnp.where(active, new, old))


def outgoing_rows(array: jax.Array, layer: UnitLayer) -> jax.Array:
    """The outgoing weight as ``[out_group, units, rest]`` (rest: every other axis, flattened)."""
    moved = jnp.moveaxis(array, layer.out_axis, 0)
    return moved.reshape((layer.out_group, layer.units, -1))


def _set_rows(
    array: jax.Array, layer: UnitLayer, idx: jax.Array, active: jax.Array, value: float
) -> jax.Array:
    """Outgoing entries of units idx[j] (where active[j]) set to ``value``."""
    moved = jnp.moveaxis(array, layer.out_axis, 0)
    shape = moved.shape
    grouped = moved.reshape((layer.out_group, layer.units) + shape[1:])
    old = grouped[:, idx]
    mask = active.reshape((1, -1) + (1,) * (len(shape) - 1))
    grouped = grouped.at[:, idx].set(jnp.where(mask, value, old))
    return jnp.moveaxis(grouped.reshape(shape), 0, layer.out_axis)


def reset_units(
    params: Params,
    layer: UnitLayer,
    idx: jax.Array,
    active: jax.Array,
    fresh_incoming: jax.Array | None,
) -> Params:
    """Reset units ``idx[j]`` (where ``active[j]``) of ``layer``.

    Incoming weights ← ``fresh_incoming[..., j]`` (or 0 when None), bias ← 0, per-unit
    extras ← their reset values, outgoing weights ← 0.

    Args:
      idx: int ``[k]`` unit indices (distinct).
      active: bool ``[k]``: which of the k slots really reset.
      fresh_incoming: ``[*incoming.shape[:-1], k]`` new incoming weights.
    """
    w = get(params, layer.incoming)
    if fresh_incoming is None:
        fresh_incoming = jnp.zeros(w.shape[:-1] + idx.shape, w.dtype)
    new_w = fresh_incoming
    params = replace(params, layer.incoming, _set_last(w, idx, active, new_w))
    b = get(params, layer.bias)
    params = replace(params, layer.bias, _set_last(b, idx, active, jnp.zeros(idx.shape, b.dtype)))
    for path, value in zip(layer.extra, layer.extra_reset, strict=True):
        e = get(params, path)
        value = jnp.full(idx.shape, value, e.dtype)
        params = replace(params, path, _set_last(e, idx, active, value))
    out = get(params, layer.outgoing)
    return replace(params, layer.outgoing, _set_rows(out, layer, idx, active, 0.0))


def zero_units(tree: Params, layer: UnitLayer, idx: jax.Array, active: jax.Array) -> Params:
    """Zero every entry of units idx (where active) in a params-shaped tree (e.g. Adam moments)."""
    tree = reset_units(tree, layer, idx, active, None)
    for path in layer.extra:  # moments of extras go to 0, not to the parameter's reset value
        e = get(tree, path)
        tree = replace(tree, path, _set_last(e, idx, active, jnp.zeros(idx.shape, e.dtype)))
    return tree


def map_param_trees(
    fn: Callable[[Params], Params],
    opt_state: Any,
    params: Params,
    anchor_fn: Callable[[Params], Params] | None = None,
) -> Any:
    """Apply ``fn`` to every params-shaped subtree of an optimizer state.

    Optimizer moments (Adam's ``mu`` and ``nu``, momentum traces) are stored as trees with
    the same structure as the parameters; they are found by that structure, so a unit's
    moments are addressed through the same paths as its weights. An :class:`Anchor` is
    not a moment: it is left as it is, or replaced by ``Anchor(anchor_fn(anchor.params))``.
    """
    treedef = jax.tree_util.tree_structure(params)
    shapes = [x.shape for x in jax.tree_util.tree_leaves(params)]

    def is_params(node: Any) -> bool:
        if not isinstance(node, dict) or jax.tree_util.tree_structure(node) != treedef:
            return False
        return [x.shape for x in jax.tree_util.tree_leaves(node)] == shapes

    def is_leaf(node: Any) -> bool:
        return isinstance(node, Anchor) or is_params(node)

    def visit(node: Any) -> Any:
        if isinstance(node, Anchor):
            return node if anchor_fn is None else Anchor(anchor_fn(node.params))
        return fn(node) if is_params(node) else node

    return jax.tree_util.tree_map(visit, opt_state, is_leaf=is_leaf)
