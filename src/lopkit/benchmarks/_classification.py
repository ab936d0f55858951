"""Loss and reported metric of the classification benchmarks (logits and int labels)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(out: jax.Array, y: jax.Array) -> jax.Array:
    """mean −log softmax(out)[y]. out: ``[batch, classes]`` logits; y: int ``[batch]``."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))


def accuracy(out: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of the batch whose arg-max logit is the label (ties: the lowest index)."""
    return jnp.mean((jnp.argmax(out, axis=-1) == y).astype(jnp.float32))
