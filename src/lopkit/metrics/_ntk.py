"""Empirical neural tangent kernel (NTK) on a small probe set, and its summary statistics."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lopkit.metrics._linalg import eigvalsh


def ntk_gram(apply_fn: Callable, params, x) -> jnp.ndarray:
    """Empirical NTK Gram matrix ``K_ij = sum_o <grad_theta f_o(x_i), grad_theta f_o(x_j)>``.

    The inner product runs over every parameter leaf (weights, biases, ...), unscaled (no
    1/width factor), and is SUMMED over the outputs o (the trace of the per-output-pair
    kernel block ``K_ij^{oo'}`` over o = o'). Example: a single-output linear model
    ``f(x) = w.x + b`` has ``grad_w f = x``, ``grad_b f = 1``, hence ``K = X X^T + 1``.

    Per-example Jacobians are taken with ``jax.jacrev`` under ``jax.vmap`` over the probe
    examples, calling ``apply_fn`` on one example at a time (batch of 1): ``apply_fn`` must
    treat examples independently (no BatchNorm in training mode). Memory is
    ``batch * outputs * n_params`` floats, so keep the probe set small (tens of examples).

    Args:
      apply_fn: ``apply_fn(params, x[b, ...]) -> [b, outputs]`` (or ``[b]``).
      params: parameter pytree (one seed).
      x: probe inputs ``[batch, ...]``.

    Returns:
      ``[batch, batch]`` symmetric positive semi-definite.

    References:
      Jacot, Gabriel & Hongler, "Neural tangent kernel", NeurIPS 2018; Lyle et al.,
      "Disentangling the causes of plasticity loss in neural networks", 2024 (empirical NTK
      on a probe set).
    """
    x = jnp.asarray(x)

    def f_one(p, xi):
        return jnp.reshape(apply_fn(p, xi[None]), (-1,))  # [outputs]

    jac = jax.vmap(jax.jacrev(f_one), in_axes=(None, 0))(params, x)
    flat = [j.reshape(j.shape[0], j.shape[1], -1) for j in jax.tree_util.tree_leaves(jac)]
    j_all = jnp.concatenate(flat, axis=-1)  # [batch, outputs, n_params]
    return jnp.einsum("iop,jop->ij", j_all, j_all)


def ntk_summary(K, rtol: float | None = None) -> dict[str, jnp.ndarray]:
    """Rank, condition number and off-diagonal mass of an NTK Gram matrix.

    With ``lambda_1 >= ... >= lambda_n`` the eigenvalues of ``K`` and
    ``tol = rtol * lambda_1`` (``rtol`` default ``n * eps`` of the dtype, as in
    ``numpy.linalg.matrix_rank``):

    * ``ntk_rank = #{k : lambda_k > tol}`` (int32);
    * ``ntk_condition = lambda_1 / min{lambda_k : lambda_k > tol}`` over the numerically
      positive eigenvalues (so it is finite whenever K != 0 and ignores the null space,
      which ``ntk_rank`` reports); ``inf`` if K = 0;
    * ``ntk_offdiag_ratio = mean_{i != j} |K_ij| / mean_i K_ii`` (0 when n = 1 or K = 0).
      Near 0: per-example gradients are orthogonal; near 1: they are nearly collinear, so
      an update on one example moves all of them (interference).

    Args:
      K: ``[n, n]`` symmetric PSD Gram matrix (e.g. from :func:`ntk_gram`).
      rtol: relative eigenvalue cut-off; ``None`` for ``n * eps``.

    Returns:
      ``{"ntk_rank", "ntk_condition", "ntk_offdiag_ratio"}`` of scalars.

    References:
      Lyle et al., "Disentangling the causes of plasticity loss in neural networks", 2024
      (NTK rank and conditioning as plasticity diagnostics).
    """
    K = jnp.asarray(K)
    K = K.astype(jnp.promote_types(K.dtype, jnp.float32))
    n = K.shape[0]
    if rtol is None:
        rtol = n * float(jnp.finfo(K.dtype).eps)
    lam = eigvalsh(0.5 * (K + K.T))
    lam_max = lam[-1]
    positive = (lam > rtol * lam_max) & (lam_max > 0)
    lam_min = jnp.min(jnp.where(positive, lam, jnp.inf))
    condition = jnp.where(jnp.any(positive), lam_max / lam_min, jnp.inf)
    diag = jnp.diagonal(K)
    mean_diag = jnp.mean(diag)
    off_mask = 1.0 - jnp.eye(n, dtype=K.dtype)
    mean_off = jnp.sum(jnp.abs(K) * off_mask) / max(n * (n - 1), 1)
    ratio = jnp.where(mean_diag > 0, mean_off / jnp.where(mean_diag > 0, mean_diag, 1.0), 0.0)
    return {
        "ntk_rank": jnp.sum(positive).astype(jnp.int32),
        "ntk_condition": condition,
        "ntk_offdiag_ratio": ratio,
    }
