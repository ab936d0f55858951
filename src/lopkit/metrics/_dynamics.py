"""Diagnostics of how the network moves: output churn, relative update size per layer
(effective learning rate), weight-matrix isometry, feature norms and the shift of
pre-activations away from their values at initialization.

Written for one seed, jit- and vmap-able, like every metric (docs/metrics.md).
"""

from __future__ import annotations

import jax.numpy as jnp

from lopkit.metrics._units import as_units
from lopkit.metrics._weights import _weight_leaves


def _float(x) -> jnp.ndarray:
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def churn(out, out_prev) -> jnp.ndarray:
    """Output churn ``E_x ‖f_θ(x) − f_θ'(x)‖²``: the squared L2 distance between two
    networks' outputs on the same inputs, summed over outputs, averaged over examples.

    Args:
      out, out_prev: ``[batch, outputs]`` (any trailing axes are summed) of the current
        and the earlier parameters on the same batch.

    Returns:
      Float scalar ≥ 0.

    References:
      Tang, Obando-Ceron, Castro, Courville & Berseth, "Mitigating plasticity loss in
      continual reinforcement learning by reducing churn", ICML 2025 (C-CHAIN; churn as
      the output change on a reference batch).
    """
    d = _float(out) - _float(out_prev)
    d = d.reshape(d.shape[0], -1)
    return jnp.mean(jnp.sum(d * d, axis=1))


def relative_update(w, w_prev) -> jnp.ndarray:
    """``‖w − w'‖_F / ‖w‖_F``: the size of the change from ``w'`` to ``w`` relative to the
    size ``w`` has now (0 when nothing changed; inf when ``w`` is 0 and ``w'`` is not).

    The current norm, not the earlier one: a layer initialized at zero (a zero output
    layer) has a finite ratio after its first update, and for a scale-invariant layer the
    effect of an update scales as ``1/‖w‖`` of the weights it is applied to.

    References:
      Lyle, Zheng, Khetarpal, van Hasselt, Pascanu, Martens & Dabney, "Normalization and
      effective learning rates in reinforcement learning", NeurIPS 2024 (NaP; the effective
      learning rate as the relative size of a layer's update).
    """
    w, w_prev = _float(w), _float(w_prev)
    num = jnp.sqrt(jnp.sum(jnp.square(w - w_prev)))
    den = jnp.sqrt(jnp.sum(jnp.square(w)))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.where(num > 0, jnp.inf, 0.0))


def effective_lr_per_layer(params, params_prev) -> dict[str, jnp.ndarray]:
    """``{layer: ‖W_l − W_l'‖_F / ‖W_l‖_F}`` over each weight leaf (``ndim ≥ 2``) between
    ``params_prev`` and ``params``, keyed by the leaf's path without its last component
    (``"hidden_0"`` for ``hidden_0/w``), plus ``""``: the pooled ratio over every weight,
    ``‖ΔW‖ / ‖W‖`` with all weights as one vector (not a mean of the layers' ratios).

    Biases and normalization parameters are left out: the effective learning rate of
    NaP is that of the weight matrices, whose norm sets the scale of the update's effect.

    References:
      Lyle et al., NeurIPS 2024 (NaP: the effective learning rate of a scale-invariant
      layer falls as its weight norm grows; measured here as the relative update size).
    """
    now = dict(_weight_leaves(params, False))
    before = dict(_weight_leaves(params_prev, False))
    out = {name.rsplit("/", 1)[0]: relative_update(w, before[name]) for name, w in now.items()}
    if now:
        flat = jnp.concatenate([_float(w).ravel() for w in now.values()])
        flat_before = jnp.concatenate([_float(before[n]).ravel() for n in now])
        out[""] = relative_update(flat, flat_before)
    return out


def isometry_gap(w) -> jnp.ndarray:
    """``‖G − I_k‖_F / ‖I_k‖_F`` with ``G`` the ``k × k`` Gram matrix of ``w`` on its
    smaller side, ``k = min(fan_in, fan_out)``: ``WᵀW`` (columns) when ``fan_in ≥
    fan_out``, ``WWᵀ`` (rows) otherwise. 0 exactly for a (semi-)orthogonal matrix, the
    nearest isometry FIRE projects onto.

    A dense weight is ``[fan_in, fan_out]``; a conv kernel ``[kh, kw, c_in, c_out]`` is
    read as ``[kh·kw·c_in, c_out]``.

    Returns:
      Float scalar ≥ 0.

    References:
      Han et al., "FIRE" (ICLR 2026): weights are reset to their nearest isometry
      ``W(WᵀW)^(−1/2)``; the gap measures the distance from it. Parseval regularization
      (Chung et al., NeurIPS 2024) penalizes ``‖WWᵀ − I‖²_F``.
    """
    w = _float(w)
    w = w.reshape(-1, w.shape[-1])
    if w.shape[0] < w.shape[1]:
        w = w.T
    gram = w.T @ w
    k = gram.shape[0]
    return jnp.sqrt(jnp.sum(jnp.square(gram - jnp.eye(k, dtype=gram.dtype)))) / jnp.sqrt(k)


def isometry_gap_per_layer(params) -> dict[str, jnp.ndarray]:
    """``{layer: isometry_gap(W_l)}`` for each weight leaf, keyed as
    :func:`effective_lr_per_layer`, plus ``""``: the mean over the weight layers."""
    out = {name.rsplit("/", 1)[0]: isometry_gap(w) for name, w in _weight_leaves(params, False)}
    if out:
        out[""] = jnp.mean(jnp.stack(list(out.values())))
    return out


def feature_norm(h) -> jnp.ndarray:
    """``E_x ‖φ(x)‖₂``: the L2 norm of one example's features, averaged over examples.

    Conv features ``[batch, height, width, channels]`` are one vector per example (the
    norm is over height × width × channels), unlike the unit metrics, which treat each
    position as a sample.

    Args:
      h: ``[batch, ...]`` features of one layer (or several concatenated on the last axis).

    Returns:
      Float scalar ≥ 0.

    References:
      Lyle et al., "Disentangling the causes of plasticity loss in neural networks", 2024
      (growth of feature norms with loss of plasticity).
    """
    h = _float(h)
    return jnp.mean(jnp.sqrt(jnp.sum(jnp.square(h.reshape(h.shape[0], -1)), axis=1)))


def preactivation_shift(pre, pre0) -> dict[str, jnp.ndarray]:
    """How a layer's pre-activations moved from their values at initialization, on the
    same inputs: ``{"preactivation_mean_shift": mean(z) − mean(z₀),
    "preactivation_std_ratio": std(z) / std(z₀)}``, each statistic over every entry of the
    layer (examples × positions × units). The ratio is 1 when ``std(z₀) = 0 = std(z)``,
    inf when only ``std(z₀)`` is 0.

    Args:
      pre: ``[batch, units]`` or ``[batch, height, width, channels]``, current parameters.
      pre0: the same layer and inputs under the initial parameters θ₀.

    References:
      Lyle et al., "Disentangling the causes of plasticity loss in neural networks", 2024
      (pre-activation distribution shift as a cause of plasticity loss).
    """
    z, z0 = _float(as_units(pre)), _float(as_units(pre0))
    s, s0 = jnp.std(z), jnp.std(z0)
    ratio = jnp.where(s0 > 0, s / jnp.where(s0 > 0, s0, 1.0), jnp.where(s > 0, jnp.inf, 1.0))
    shift = jnp.mean(z) - jnp.mean(z0)
    return {"preactivation_mean_shift": shift, "preactivation_std_ratio": ratio}
