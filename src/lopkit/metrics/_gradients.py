"""The loss gradient with respect to a network's hidden features, for any network.

A network exposes its hidden features in its trace (``apply(params, x) -> (out, trace)``,
``trace.hidden``) but takes no input through which to differentiate with respect to them.
:func:`feature_gradients` traces ``fn`` once to a jaxpr, in which each returned feature is
a value computed by one equation, and re-evaluates that jaxpr with a zero *tap* added to
each feature where it is computed: every later use (the next layer, the loss) sees
``h + tap``, so ``∂loss/∂tap = ∂loss/∂h`` exactly, and the forward values are unchanged.
No network has to know about it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core


def feature_gradients(fn: Callable[..., tuple[Any, list[Any]]], *args) -> list[jnp.ndarray]:
    """``[∂loss/∂h_l]`` for ``fn(*args) -> (loss, [h_1, …, h_L])``, each the shape of
    ``h_l``.

    ``loss`` is a scalar; the ``h_l`` are intermediate values of ``fn`` (e.g. a trace's
    hidden features) of the same computation as the loss: one forward pass (a second
    ``apply`` for the trace computes other values, whose gradient is 0). The gradient of
    ``loss`` with respect to ``h_l`` counts every path from ``h_l`` to the loss (the next
    layer, a skip connection), as backpropagation does; for a value that is also an input
    of ``fn`` the tap is added to the input.

    References:
      The quantity GraMa scores (Liu et al. 2025, arXiv 2505.24061), taken by the probes at
      each unit's pre-activation (:func:`lopkit.metrics.grama_scores`).
    """
    flat, _ = jax.tree_util.tree_flatten(args)
    closed = jax.make_jaxpr(lambda *a: fn(*jax.tree_util.tree_unflatten(_, a)))(*flat)
    jaxpr = closed.jaxpr
    loss_var, *feature_vars = jaxpr.outvars
    if any(isinstance(v, core.Literal) for v in feature_vars):
        raise ValueError("feature_gradients: a feature is a constant of fn, not a computed value")

    def run(taps):
        tap_of: dict[Any, Any] = {}
        for v, t in zip(feature_vars, taps, strict=True):
            tap_of[v] = tap_of[v] + t if v in tap_of else t  # a value returned twice
        env: dict[Any, Any] = {}

        def write(v, x):
            env[v] = x + tap_of[v] if v in tap_of else x

        def read(v):
            return v.val if isinstance(v, core.Literal) else env[v]

        for v, c in zip(jaxpr.constvars, closed.consts, strict=True):
            write(v, c)
        for v, a in zip(jaxpr.invars, flat, strict=True):
            write(v, a)
        for eqn in jaxpr.eqns:
            params = eqn.primitive.get_bind_params(eqn.params)
            with eqn.ctx.manager:
                outs = eqn.primitive.bind(*map(read, eqn.invars), **params)
            if not eqn.primitive.multiple_results:
                outs = [outs]
            for v, x in zip(eqn.outvars, outs, strict=True):
                write(v, x)
        return read(loss_var)

    zeros = [jnp.zeros(v.aval.shape, v.aval.dtype) for v in feature_vars]
    return jax.grad(run)(zeros)
