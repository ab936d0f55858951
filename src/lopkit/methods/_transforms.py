"""Small optax transformations used by remedies (pure, explicit state)."""

from __future__ import annotations

from typing import Any

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax


def add_scaled_params(weight_decay: float) -> optax.GradientTransformation:
    """g ← g + λθ (coupled L2 / PyTorch SGD ``weight_decay``)."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_scaled_params needs params")
        return jax.tree_util.tree_map(lambda g, p: g + weight_decay * p, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def add_param_noise(std: float) -> optax.GradientTransformationExtraArgs:
    """u ← u + ε, ε ~ N(0, σ²) independently per parameter, fresh every step.

    Needs the extra argument ``key`` (the step's PRNG key).
    """

    def update(updates, state, params=None, *, key: jax.Array | None = None, **extra: Any):
        if key is None:
            raise ValueError("add_param_noise needs the step key (extra argument 'key')")
        # One draw for the whole tree: per-leaf keys would cost a threefry split per leaf.
        flat, unravel = jax.flatten_util.ravel_pytree(updates)
        noise = std * jax.random.normal(key, flat.shape, flat.dtype)
        return unravel(flat + noise), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def scale_params(factor: float) -> optax.GradientTransformation:
    """u ← u − (1 − factor)·θ, i.e. after applying, θ ← factor·θ + u (decoupled shrink)."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("scale_params needs params")
        return jax.tree_util.tree_map(lambda u, p: u - (1.0 - factor) * p, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def zeros_like_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(jnp.zeros_like, tree)
