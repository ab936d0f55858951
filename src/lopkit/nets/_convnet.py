"""The continual-ImageNet convolutional network, with channels as units.

Architecture (Dohare et al. 2024, Methods "Continual ImageNet"; official ``conv_net.py``)::

    conv 3→32 5×5, ReLU, max-pool 2×2
    conv 32→64 3×3, ReLU, max-pool 2×2
    conv 64→128 3×3, ReLU, max-pool 2×2
    flatten → fc 128, ReLU → fc 128, ReLU → fc 2

NHWC images; kernels ``[kh, kw, c_in, c_out]`` (HWIO); stride 1; pooling 2×2 with stride 2,
rounding down (PyTorch's ``MaxPool2d(2, 2)``).

Padding, and small inputs. The paper uses unpadded ("valid") convolutions on 32×32 images:
32 → 28 → 14 → 12 → 6 → 4 → 2, so the first fc layer reads 2·2·128 = 512 features. Valid
convolutions work down to 28×28 inputs (28 → 24 → 12 → 10 → 5 → 3 → 1). Smaller images
(8×8 digits) need ``padding="same"``: every convolution keeps the spatial size and only the
pools shrink it (8 → 4 → 2 → 1). ``check`` refuses a configuration whose feature map would
vanish, and names the fix.

Parameters are a plain dict pytree::

    {"conv_0": {"w": [5, 5, C, 32], "b": [32]}, "conv_1": …, "conv_2": …,
     "fc_0": {"w": [H·W·128, 128], "b": [128]}, "fc_1": …, "output": {"w": [128, k], "b": [k]}}

Init: Kaiming-uniform with the activation's gain (fan-in = kh·kw·c_in for a kernel), the
output layer with gain 1 (or all zeros with ``zero_output``: continual ImageNet sets the
output layer to zero at the start of every task, the first included), all biases zero.

Units (:class:`lopkit.nets.UnitLayer`): a channel of a conv layer is a unit — its kernel
slice ``w[..., i]``, its bias, and its outgoing slice: the input-channel axis of the next
kernel (``out_axis=-2``), or, after the flatten, its rows of ``fc_0`` at every spatial
position (row ``p·C + i`` for position ``p``, ``out_group = H·W``). Fc hidden units are
as in the MLP. The trace of a conv layer holds its pre-activations ``[B, H, W, C]`` before
pooling and its features ``[B, H', W', C]`` after pooling (what the next layer reads, and
what the official code returns); statistics over a channel average over batch × height ×
width (docs/design.md §11).

References:
  Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton. Loss of plasticity in deep
  continual learning. Nature 632, 768–774 (2024), Methods "Continual ImageNet".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.nets._activations import ACTIVATIONS, kaiming_uniform_bound
from lopkit.nets._base import Network
from lopkit.nets._mlp import Trace
from lopkit.nets._units import UnitLayer

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def max_pool_2x2(h: jax.Array) -> jax.Array:
    """2×2 max-pool with stride 2 over ``[B, H, W, C]`` (an odd last row / column is dropped,
    as VALID pooling does).

    Written as a reshape and a max rather than ``lax.reduce_window``: XLA:CPU computes the
    gradient of ``reduce_window`` (select-and-scatter) 1.5–4× slower inside ``lax.scan``
    (measured: batch 100, 28×28×32, 11.8 vs 3.1 ms per step). The forward values are the
    same; the gradient differs only at exact ties inside a window, which ``jnp.max`` splits
    equally where select-and-scatter gives it to the first — after a ReLU such ties are
    zeros, whose gradient the ReLU stops anyway.
    """
    b, height, width, c = h.shape
    h = h[:, : height // 2 * 2, : width // 2 * 2]
    return h.reshape(b, height // 2, 2, width // 2, 2, c).max(axis=(2, 4))


@dataclasses.dataclass(frozen=True)
class ConvNetConfig:
    """Conv layers (each conv → activation → 2×2 max-pool), then fc layers; defaults are the
    continual-ImageNet network of Dohare et al. (2024)."""

    input_shape: tuple[int, ...] = field((32, 32, 3), "image shape (H, W, C)", positive=True)
    channels: tuple[int, ...] = field(
        (32, 64, 128), "output channels of each conv layer", positive=True
    )
    kernels: tuple[int, ...] = field(
        (5, 3, 3), "square kernel size of each conv layer", positive=True
    )
    hidden: tuple[int, ...] = field((128, 128), "widths of the fc hidden layers", positive=True)
    outputs: int = field(2, "number of outputs (classes)", positive=True)
    padding: str = field(
        "valid", "valid (the paper's, for ≥ 28×28 inputs) or same", choices=("valid", "same")
    )
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    zero_output: bool = field(False, "initialize the output layer to zero (continual ImageNet)")
    dropout: float = field(
        0.0, "inverted dropout rate on the fc hidden features in training", open_unit=True
    )
    conv: str = field(
        "im2col",
        "convolution: im2col (slices + matmul; fast in XLA:CPU loops) or xla (lax.conv)",
        choices=("im2col", "xla"),
    )

    def check(self) -> None:
        if len(self.input_shape) != 3:
            raise ConfigError(f"input_shape must be (H, W, C), got {self.input_shape}")
        if len(self.channels) != len(self.kernels) or not self.channels:
            raise ConfigError(
                f"channels {self.channels} and kernels {self.kernels} need one entry per conv layer"
            )
        feature_map(self)

    @property
    def flat_features(self) -> int:
        h, w = feature_map(self)
        return h * w * self.channels[-1]


def feature_map(c: ConvNetConfig) -> tuple[int, int]:
    """Spatial size (H, W) after the last pool; ConfigError if the map would vanish."""
    h, w = c.input_shape[:2]
    for i, k in enumerate(c.kernels):
        if c.padding == "valid":
            h, w = h - k + 1, w - k + 1
        if min(h, w) < 2:
            raise ConfigError(
                f"a {c.input_shape[0]}×{c.input_shape[1]} input is too small for conv layer "
                f"{i} (kernel {k}, padding {c.padding!r}): the map before its 2×2 pool is "
                f"{max(h, 0)}×{max(w, 0)}; use padding='same' or fewer conv layers"
            )
        h, w = h // 2, w // 2
    return h, w


def conv2d(
    h: jax.Array,
    w: jax.Array,
    stride: int,
    pads: tuple[tuple[int, int], tuple[int, int]],
    method: str = "im2col",
) -> jax.Array:
    """Convolution of ``h`` ``[B, H, W, c_in]`` with ``w`` ``[kh, kw, c_in, c_out]``, zero
    padding ``pads`` ((top, bottom), (left, right)), square ``stride``.

    ``im2col``: the kh·kw shifted (strided) views of ``h`` side by side,
    ``[B, H', W', kh·kw·c_in]`` (feature (i·kw + j)·c_in + c: the row-major order of ``w``),
    times ``w`` as a ``[kh·kw·c_in, c_out]`` matrix. XLA:CPU computes the kernel gradient of
    ``lax.conv_general_dilated`` some 20–70× slower inside a loop (the engine's scan) than
    outside (measured with jax 0.10 on 2 cores); as a matmul it keeps its speed. ``xla``:
    ``lax.conv_general_dilated`` (the better choice on GPUs).
    """
    if method == "xla":
        return jax.lax.conv_general_dilated(
            h, w, (stride, stride), pads, dimension_numbers=_DIMENSIONS
        )
    kh, kw, _, c_out = w.shape
    h = jnp.pad(h, ((0, 0), *pads, (0, 0)))
    rows = (h.shape[1] - kh) // stride + 1
    cols = (h.shape[2] - kw) // stride + 1
    views = [
        h[:, i : i + stride * (rows - 1) + 1 : stride, j : j + stride * (cols - 1) + 1 : stride]
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.concatenate(views, axis=-1) @ w.reshape(-1, c_out)


class ConvNet(Network):
    """The conv net as pure functions of a params pytree. Hashable by its config."""

    def __init__(self, config: ConvNetConfig):
        self.config = config
        c = config
        self.activation = ACTIVATIONS[c.activation]
        n_conv, n_fc = len(c.channels), len(c.hidden)
        self.conv_names = [f"conv_{i}" for i in range(n_conv)]
        self.fc_names = [f"fc_{i}" for i in range(n_fc)]
        self.names = self.conv_names + self.fc_names + ["output"]
        in_channels = (c.input_shape[2], *c.channels[:-1])
        h, w = feature_map(c)
        self.positions = h * w
        # (weight shape, fan-in) of every layer, in order
        self.shapes = [
            (k, k, ci, co) for k, ci, co in zip(c.kernels, in_channels, c.channels, strict=True)
        ]
        widths = (self.positions * c.channels[-1], *c.hidden, c.outputs)
        self.shapes += [(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        fan_ins = [math.prod(s[:-1]) for s in self.shapes]
        self.bounds = [kaiming_uniform_bound(f, c.activation) for f in fan_ins[:-1]]
        self.bounds.append(kaiming_uniform_bound(fan_ins[-1], "linear"))
        self.unit_layers = tuple(self._unit_layer(i) for i in range(n_conv + n_fc))

    def _unit_layer(self, i: int) -> UnitLayer:
        name, nxt = self.names[i], self.names[i + 1]
        n_conv = len(self.conv_names)
        units = self.shapes[i][-1]
        if i < n_conv - 1:  # conv → conv: the next kernel's input-channel axis
            out_group, out_axis = 1, -2
        elif i == n_conv - 1:  # conv → flatten → fc: its rows at every position
            out_group, out_axis = self.positions, 0
        else:
            out_group, out_axis = 1, 0
        return UnitLayer(
            name=name,
            units=units,
            incoming=(name, "w"),
            bias=(name, "b"),
            outgoing=(nxt, "w"),
            init_bound=self.bounds[i],
            out_group=out_group,
            out_axis=out_axis,
        )

    def __hash__(self) -> int:
        return hash(self.config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConvNet) and other.config == self.config

    @property
    def output_layer(self) -> str:
        return "output"

    def init_layer(self, key: jax.Array, index: int) -> dict[str, jax.Array]:
        """Fresh parameters of layer ``index``: weights U(−b, b), bias 0 (zero output layer
        with ``zero_output``)."""
        shape, bound = self.shapes[index], self.bounds[index]
        w = jax.random.uniform(key, shape, jnp.float32, -bound, bound)
        if self.config.zero_output and index == len(self.names) - 1:
            w = jnp.zeros_like(w)
        return {"w": w, "b": jnp.zeros((shape[-1],), jnp.float32)}

    def init(self, key: jax.Array) -> dict[str, Any]:
        """Every layer as :meth:`init_layer` would draw it, from one uniform draw split by
        layer (one random computation compiles several times faster on XLA:CPU than one per
        layer)."""
        sizes = [math.prod(shape) for shape in self.shapes]
        draws = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
        params, start = {}, 0
        for i, (name, shape, size) in enumerate(zip(self.names, self.shapes, sizes, strict=True)):
            w = draws[start : start + size].reshape(shape) * self.bounds[i]
            if self.config.zero_output and i == len(self.names) - 1:
                w = jnp.zeros_like(w)
            params[name] = {"w": w, "b": jnp.zeros((shape[-1],), jnp.float32)}
            start += size
        return params

    def _conv(self, h: jax.Array, w: jax.Array) -> jax.Array:
        kh, kw = w.shape[:2]
        if self.config.padding == "same":  # XLA's SAME: k − 1 zeros in all, the extra after
            pads = (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
        else:
            pads = ((0, 0), (0, 0))
        return conv2d(h, w, 1, pads, self.config.conv)

    def apply(
        self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None
    ) -> tuple[jax.Array, Trace]:
        """Forward pass. ``x``: ``[batch, H, W, C]`` → (``[batch, outputs]`` logits, Trace).

        Trace: per conv layer ``pre`` ``[B, H, W, C]`` (before pooling) and ``hidden``
        ``[B, H', W', C]`` (after pooling); per fc layer ``[B, units]``. ``key`` turns
        dropout on (training) for the fc hidden features.
        """
        pre, hidden = [], []
        h = x
        for name in self.conv_names:
            z = self._conv(h, params[name]["w"]) + params[name]["b"]
            h = max_pool_2x2(self.activation(z))
            pre.append(z)
            hidden.append(h)
        h = h.reshape(h.shape[0], -1)  # row-major over (H, W, C): row p·C + c
        for i, name in enumerate(self.fc_names):
            z = h @ params[name]["w"] + params[name]["b"]
            h = self.activation(z)
            pre.append(z)
            hidden.append(h)
            if key is not None and self.config.dropout > 0:
                keep = 1.0 - self.config.dropout
                mask = jax.random.bernoulli(jax.random.fold_in(key, i), keep, h.shape)
                h = jnp.where(mask, h / keep, 0.0)
        out = h @ params["output"]["w"] + params["output"]["b"]
        return out, Trace(pre, hidden)
