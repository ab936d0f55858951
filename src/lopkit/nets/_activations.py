"""Activation functions and their Kaiming gains.

Gains follow ``torch.nn.init.calculate_gain`` (the paper's code initializes with
``kaiming_uniform_`` and the activation's gain). PyTorch defines no gain for ELU or swish;
we use ReLU's √2 for both, as a unit that is linear for positive inputs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LEAKY_SLOPE = 0.01

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, LEAKY_SLOPE),
    "swish": jax.nn.swish,
    "selu": jax.nn.selu,
    "linear": lambda x: x,
}

GAINS = {
    "relu": math.sqrt(2.0),
    "tanh": 5.0 / 3.0,
    "sigmoid": 1.0,
    "elu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1.0 + LEAKY_SLOPE**2)),
    "swish": math.sqrt(2.0),
    "selu": 3.0 / 4.0,
    "linear": 1.0,
}


def kaiming_uniform_bound(fan_in: int, activation: str) -> float:
    """Bound b of Kaiming-uniform init U(−b, b), b = gain·√(3 / fan_in) (He et al. 2015)."""
    return GAINS[activation] * math.sqrt(3.0 / fan_in)
