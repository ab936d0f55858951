"""Sharpness: the top eigenvalue of the loss Hessian, by power iteration."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def sharpness(loss_fn: Callable, params, batch, key: jax.Array, iters: int = 20) -> jnp.ndarray:
    """Top Hessian eigenvalue of ``loss_fn(params, batch)`` w.r.t. ``params``.

    Power iteration on Hessian-vector products over the flattened parameters
    (``jax.flatten_util.ravel_pytree``): ``v_0 ~ N(0, I)`` from ``key``, normalized;
    ``v_{t+1} = H v_t / ||H v_t||`` for ``iters`` steps; returns the Rayleigh quotient
    ``v^T H v`` of the last (unit) iterate. ``H v`` is forward-over-reverse (``jax.jvp`` of
    ``jax.grad``), linearized once with ``jax.linearize``; the loop is a
    ``lax.fori_loop``, so the function is jit- and vmap-able.

    Power iteration converges to the eigenvalue of largest MAGNITUDE; for a loss at or
    near a minimum (the usual case) that is the largest eigenvalue. The error of the
    Rayleigh quotient shrinks like ``(lambda_2 / lambda_1)^(2 * iters)``, so raise
    ``iters`` when the top of the spectrum is crowded.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      params: parameter pytree (one seed).
      batch: whatever ``loss_fn`` takes, e.g. the current minibatch.
      key: PRNG key for the starting vector.
      iters: power-iteration steps; 20.

    Returns:
      Float scalar (the Rayleigh quotient, signed).

    References:
      Lyle et al., "Disentangling the causes of plasticity loss in neural networks", 2024
      (sharpness); Cohen et al., "Gradient descent on neural networks typically occurs at
      the edge of stability", ICLR 2021 (power iteration on Hessian-vector products).
    """
    flat, unravel = ravel_pytree(params)
    grad_fn = jax.grad(lambda v: loss_fn(unravel(v), batch))
    _, hvp = jax.linearize(grad_fn, flat)

    def normalize(v):
        norm = jnp.linalg.norm(v)
        return v / jnp.where(norm > 0, norm, 1.0)

    v0 = normalize(jax.random.normal(key, flat.shape, flat.dtype))
    v = jax.lax.fori_loop(0, iters, lambda _, v: normalize(hvp(v)), v0)
    return jnp.vdot(v, hvp(v))
