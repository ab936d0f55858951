"""Multi-layer perceptron with explicit units.

Parameters are a plain dict pytree::

    {"hidden_0": {"w": [in, n0], "b": [n0], ("ln_scale", "ln_offset", "diag_scale",
                  "diag_offset": [n0]), ("input_scale": [])},
     ...,
     "output":   {"w": [features_{L-1}, out], "b": [out]}}

Hidden weights are Kaiming-uniform with the activation's gain, the output layer with gain
1, and all biases zero — the initialization of Dohare et al. (2024). ``init="lecun"`` draws
every layer from U(−√(3/fan_in), √(3/fan_in)) (LeCun-uniform, the official PPO networks).

``zero_inputs`` > 0 gives the first layer ``sizes[0] + zero_inputs`` rows for an input of
``sizes[0]`` values followed by ``zero_inputs`` that are always 0 (the official Ant's
contact forces, :mod:`lopkit.benchmarks._ant`). Those rows are parameters like any other
(fan-in, init bound, weight decay, unit resets and weight probes count them) but are never
multiplied: ``x @ w[:sizes[0]]`` equals ``[x, 0] @ w`` without the work, and their gradient
from the loss is exactly 0, as it is for an input that is 0.

``input_scale`` gives the first layer a learned scalar ``input_scale`` (init 1) that
multiplies the input, ``z_0 = (c·x) W_0 + b_0`` (Parseval's input scaling, Chung et al.
2024): a gain on the input that a near-orthogonal first layer cannot have.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit.nets._activations import ACTIVATIONS, kaiming_uniform_bound
from lopkit.nets._base import Network
from lopkit.nets._units import UnitLayer

LN_EPS = 1e-5


class Trace(NamedTuple):
    """What a forward pass exposes per hidden layer (lists in layer order).

    pre: ``[batch, units]`` pre-activations (after LayerNorm and the diagonal scale when on).
    hidden: ``[batch, features]`` post-activation features (features = 2·units for CReLU
      and deep Fourier features).
    """

    pre: list[jax.Array]
    hidden: list[jax.Array]


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """A fully connected network ``sizes[0] → … → sizes[-1]``."""

    sizes: tuple[int, ...] = field(
        (20, 5, 1), "layer widths, input first, output last", positive=True
    )
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    layernorm: bool = field(False, "LayerNorm before each hidden activation (Lyle et al. 2023)")
    diagonal: bool = field(
        False,
        "a learned per-unit scale (init 1) and offset (init 0) before each hidden activation, "
        "after LayerNorm if any (Parseval's diagonal layers, Chung et al. 2024)",
    )
    input_scale: bool = field(
        False,
        "a learned scalar (init 1) multiplying the input, kept in the first layer as "
        "'input_scale' (Parseval's input scaling, Chung et al. 2024)",
    )
    crelu: bool = field(False, "concatenated ReLU [relu(z), relu(−z)] (Abbas et al. 2023)")
    fourier: bool = field(False, "deep Fourier features [sin(z), cos(z)] (Lewandowski et al. 2025)")
    dropout: float = field(
        0.0, "inverted dropout rate on hidden features in training", open_unit=True
    )
    init: str = field(
        "kaiming",
        "kaiming: U(±gain·√(3/fan_in)) with the activation's gain; lecun: U(±√(3/fan_in))",
        choices=("kaiming", "lecun"),
    )
    zero_inputs: int = field(
        0,
        "always-zero inputs after the sizes[0] given: first-layer rows that count in fan-in, "
        "init and weight probes but are never multiplied",
        nonnegative=True,
    )

    def check(self) -> None:
        from lopkit._errors import ConfigError

        if len(self.sizes) < 2:
            raise ConfigError(f"MLP sizes need an input and an output width, got {self.sizes}")


class MLP(Network):
    """An MLP as pure functions of a params pytree. Hashable by its config (static in jit)."""

    def __init__(self, config: MLPConfig):
        if config.crelu and config.fourier:
            from lopkit._errors import ConfigError

            raise ConfigError(
                "crelu and fourier (deep Fourier features, remedy dff) are two activations of "
                "the same units; choose one"
            )
        self.config = config
        self.activation = ACTIVATIONS["relu" if config.crelu else config.activation]
        self.hidden_sizes = config.sizes[1:-1]
        self.names = [f"hidden_{i}" for i in range(len(self.hidden_sizes))] + ["output"]
        mult = 2 if config.crelu or config.fourier else 1
        inputs = config.sizes[0] + config.zero_inputs
        self.fan_ins = [inputs, *(mult * n for n in self.hidden_sizes)]
        gain_name = "relu" if config.crelu else config.activation
        if config.fourier:  # sin and cos have slope ≤ 1 around 0: no gain
            gain_name = "linear"
        if config.init == "lecun":
            gain_name = "linear"
        self.bounds = [kaiming_uniform_bound(f, gain_name) for f in self.fan_ins[:-1]]
        self.bounds.append(kaiming_uniform_bound(self.fan_ins[-1], "linear"))
        self.unit_layers = tuple(
            UnitLayer(
                name=name,
                units=n,
                incoming=(name, "w"),
                bias=(name, "b"),
                outgoing=(self.names[i + 1], "w"),
                init_bound=self.bounds[i],
                extra=(((name, "ln_scale"), (name, "ln_offset")) if config.layernorm else ())
                + (((name, "diag_scale"), (name, "diag_offset")) if config.diagonal else ()),
                extra_reset=((1.0, 0.0) if config.layernorm else ())
                + ((1.0, 0.0) if config.diagonal else ()),
                out_group=mult,
            )
            for i, (name, n) in enumerate(zip(self.names[:-1], self.hidden_sizes, strict=True))
        )

    def __hash__(self) -> int:
        return hash(self.config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MLP) and other.config == self.config

    @property
    def output_layer(self) -> str:
        return "output"

    def init_layer(self, key: jax.Array, index: int) -> dict[str, jax.Array]:
        """Fresh parameters of layer ``index`` (weights U(−b, b), bias 0, LN scale 1)."""
        fan_in, bound = self.fan_ins[index], self.bounds[index]
        width = self.config.sizes[index + 1]
        layer = {
            "w": jax.random.uniform(key, (fan_in, width), jnp.float32, -bound, bound),
            "b": jnp.zeros((width,), jnp.float32),
        }
        if self.config.layernorm and index < len(self.hidden_sizes):
            layer["ln_scale"] = jnp.ones((width,), jnp.float32)
            layer["ln_offset"] = jnp.zeros((width,), jnp.float32)
        if self.config.diagonal and index < len(self.hidden_sizes):
            layer["diag_scale"] = jnp.ones((width,), jnp.float32)
            layer["diag_offset"] = jnp.zeros((width,), jnp.float32)
        if self.config.input_scale and index == 0:
            layer["input_scale"] = jnp.ones((), jnp.float32)
        return layer

    def init(self, key: jax.Array) -> dict[str, Any]:
        keys = jax.random.split(key, len(self.names))
        return {
            name: self.init_layer(k, i)
            for i, (name, k) in enumerate(zip(self.names, keys, strict=True))
        }

    def _rows(self, w: jax.Array, index: int) -> jax.Array:
        """The rows of layer ``index``'s weights that multiply its input: the first layer's
        ``zero_inputs`` rows multiply zeros, so they are left out."""
        if index == 0 and self.config.zero_inputs:
            return w[: self.config.sizes[0]]
        return w

    def apply(
        self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None
    ) -> tuple[jax.Array, Trace]:
        """Forward pass. ``x``: ``[batch, sizes[0]]`` → ``([batch, sizes[-1]], Trace)``.

        ``key`` turns dropout on (training); without it the network is deterministic.
        """
        pre, hidden = [], []
        h = x * params[self.names[0]]["input_scale"] if self.config.input_scale else x
        for i, name in enumerate(self.names[:-1]):
            layer = params[name]
            z = h @ self._rows(layer["w"], i) + layer["b"]
            if self.config.layernorm:
                mean = z.mean(-1, keepdims=True)
                var = z.var(-1, keepdims=True)
                z = (z - mean) * jax.lax.rsqrt(var + LN_EPS) * layer["ln_scale"] + layer[
                    "ln_offset"
                ]
            if self.config.diagonal:
                z = z * layer["diag_scale"] + layer["diag_offset"]
            if self.config.fourier:
                h = jnp.concatenate([jnp.sin(z), jnp.cos(z)], -1)
            else:
                h = jnp.concatenate([z, -z], -1) if self.config.crelu else z
                h = self.activation(h)
            pre.append(z)
            hidden.append(h)
            if key is not None and self.config.dropout > 0:
                keep = 1.0 - self.config.dropout
                mask = jax.random.bernoulli(jax.random.fold_in(key, i), keep, h.shape)
                h = jnp.where(mask, h / keep, 0.0)
        out = h @ self._rows(params["output"]["w"], len(self.hidden_sizes)) + params["output"]["b"]
        return out, Trace(pre, hidden)
