"""Loss and reported metric of the classification benchmarks (logits and int labels), and
the MLP classifier that the image-stream benchmarks train."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from lopkit.benchmarks._base import Problem, optimizer_settings
from lopkit.nets import MLP, MLPConfig


def cross_entropy(out: jax.Array, y: jax.Array) -> jax.Array:
    """mean −log softmax(out)[y]. out: ``[batch, classes]`` logits; y: int ``[batch]``."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))


def accuracy(out: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of the batch whose arg-max logit is the label (ties: the lowest index)."""
    return jnp.mean((jnp.argmax(out, axis=-1) == y).astype(jnp.float32))


def mlp_classifier(stream: Any, config: Any) -> Problem:
    """An MLP ``stream.input_size → *config.hidden → stream.num_classes`` with
    ``config.activation``, trained with cross-entropy by the optimizer of ``config`` (an
    :class:`lopkit.benchmarks.OptimizerConfig`), reporting accuracy: the learner of the
    permuted, relabeled and warm-start benchmarks."""
    return Problem(
        stream=stream,
        network={
            "sizes": (stream.input_size, *config.hidden, stream.num_classes),
            "activation": config.activation,
        },
        make_network=lambda n: MLP(MLPConfig(**n)),
        loss_fn=cross_entropy,
        error_fn=accuracy,
        error_name="accuracy",
        optimizer=optimizer_settings(config),
        # Seeds one after another: at batch 1 a vmapped step is a batched matrix–vector
        # product, which XLA:CPU runs 2–3× slower than K separate ones (measured, K = 10).
        seed_map="map",
    )
