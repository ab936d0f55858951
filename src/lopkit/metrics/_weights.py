"""Weight-space diagnostics on parameter pytrees: magnitude, norms, drift from init.

A *weight* is a leaf with ``ndim >= 2`` (dense matrices ``[in, out]``, conv kernels
``[kh, kw, in, out]``); leaves with ``ndim < 2`` (biases, LayerNorm scales/offsets,
scalars) are not weights. The weight-magnitude metrics follow that split; the norms
(:func:`param_norm`, :func:`distance_from_init`, :func:`grad_norm`) use every leaf.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey


def path_str(path) -> str:
    """A readable ``/``-joined name for a pytree key path, e.g. ``"layers/0/w"``."""
    parts = []
    for key in path:
        if isinstance(key, DictKey):
            parts.append(str(key.key))
        elif isinstance(key, SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key))
    return "/".join(parts)


def _weight_leaves(params, include_biases: bool) -> list[tuple[str, jnp.ndarray]]:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    out = []
    for path, leaf in leaves:
        leaf = jnp.asarray(leaf)
        if include_biases or leaf.ndim >= 2:
            out.append((path_str(path), leaf))
    return out


def weight_magnitude(params, include_biases: bool = False) -> jnp.ndarray:
    """Average weight magnitude ``sum_w |w| / #w`` pooled over all weight matrices/kernels.

    Pooled (every weight counts once), not a mean of per-layer means: a large layer weighs
    more. By default only leaves with ``ndim >= 2`` count (biases excluded, so the metric
    tracks the weights whose growth the paper reports); ``include_biases=True`` averages
    over every leaf (as a loop over ``net.parameters()`` would).

    Args:
      params: parameter pytree (one seed).
      include_biases: also average over ``ndim < 2`` leaves.

    Returns:
      Float scalar; 0.0 if the pytree holds no weights.

    References:
      Dohare et al., "Loss of plasticity in deep continual learning", Nature 632 (2024),
      Methods ("average weight magnitude", permuted MNIST).
    """
    leaves = _weight_leaves(params, include_biases)
    count = sum(leaf.size for _, leaf in leaves)
    if count == 0:
        return jnp.zeros((), jnp.float32)
    return sum(jnp.sum(jnp.abs(leaf)) for _, leaf in leaves) / count


def weight_magnitude_per_layer(params, include_biases: bool = False) -> dict[str, jnp.ndarray]:
    """Mean ``|w|`` of each weight leaf, keyed by its pytree path (``"dense_0/w"``).

    One entry per leaf with ``ndim >= 2`` (a layer's weight matrix or kernel); biases are
    excluded unless ``include_biases``. Path names come from :func:`path_str`.

    Args:
      params: parameter pytree (one seed).
      include_biases: also report ``ndim < 2`` leaves.

    Returns:
      ``{path: float scalar}``.

    References:
      Dohare et al., Nature 632 (2024), weight magnitude per layer (official code).
    """
    return {name: jnp.mean(jnp.abs(leaf)) for name, leaf in _weight_leaves(params, include_biases)}


def param_norm(params) -> jnp.ndarray:
    """Global L2 norm ``||theta||_2 = sqrt(sum over all leaves of sum theta^2)``.

    Every leaf counts (weights, biases, normalization parameters).

    Args:
      params: any pytree of arrays.

    Returns:
      Float scalar.

    References:
      Lyle et al., "Disentangling the causes of plasticity loss in neural networks", 2024
      (parameter norm growth).
    """
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.sqrt(sum(jnp.sum(jnp.square(jnp.asarray(x))) for x in leaves))


def distance_from_init(params, params0) -> jnp.ndarray:
    """``||theta - theta_0||_2`` over all leaves; ``params0`` must have the same structure.

    Args:
      params: current parameters.
      params0: the parameters at initialization (same pytree structure and shapes).

    Returns:
      Float scalar.

    References:
      Kumar, Marklund & Van Roy, "Maintaining plasticity in continual learning via
      regenerative regularization", 2024 (L2 Init); Lyle et al. 2024.
    """
    diff = jax.tree_util.tree_map(lambda a, b: jnp.asarray(a) - jnp.asarray(b), params, params0)
    return param_norm(diff)


def grad_norm(grads) -> jnp.ndarray:
    """Global gradient norm ``||grad_theta L||_2`` over all leaves (on the current batch).

    Args:
      grads: gradient pytree (same structure as the parameters).

    Returns:
      Float scalar.

    References:
      Yuan et al., "Plasticine: Accelerating research in plasticity-motivated deep
      reinforcement learning", 2025 (gradient norm).
    """
    return param_norm(grads)
