"""ResNet-18 for 32×32 images (class-incremental CIFAR-100), with BatchNorm and units.

Architecture (He et al. 2016; the CIFAR variant of Dohare et al. 2024, official
``lop/nets/torchvision_modified_resnet.py``): a 3×3 stride-1 stem convolution (no max-pool),
BatchNorm, ReLU; four stages of ``blocks`` basic blocks with ``widths`` (64, 128, 256, 512)
channels, the first block of stages 2–4 with stride 2 and a 1×1 projection shortcut (with
BatchNorm); global average pooling; a fully connected output layer. A basic block is
``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``. Convolutions have no bias (BatchNorm
follows each). NHWC; kernels ``[kh, kw, c_in, c_out]``. Smaller ``widths`` / ``blocks``
give the same structure at CPU size.

Init: Kaiming-uniform with ReLU's gain for the convolutions (fan-in; torchvision draws them
from a normal with fan-out — we keep the uniform fan-in init of every lopkit network, which
continual backprop's re-initialization draws from too), gain 1 for the output layer, zero
output bias, BatchNorm scale 1 and offset 0, running mean 0 and variance 1.

BatchNorm (Ioffe & Szegedy 2015; PyTorch conventions): in training, each channel is
normalized by the batch's mean and (biased) variance over batch × height × width, and the
running statistics move as ``r ← (1 − m)·r + m·batch`` with ``m = bn_momentum`` (0.1) and the
unbiased variance; in evaluation the running statistics are used. ``eps`` 1e-5.

Where the running statistics live: in the parameter pytree, as ``mean`` and ``var`` next
to each BatchNorm's ``scale`` and ``offset``, so everything that treats a network's state as
one pytree — checkpoints, vmapped seeds, ``reset_all``'s fresh init, a unit reset — handles
them with no special case. The optimizer never learns them: ``apply`` (evaluation) and
``train_apply`` (training) read them but the training loss does not depend on them (their
gradient is zero), and after each update the learner writes the statistics computed by
``train_apply`` over whatever the optimizer or a remedy did to them (``with_stats``); unit
rules run after that, so a unit reset's values for them stand. Metrics over "weights"
(``weight_magnitude``) skip them (they are 1-D); parameter norms include them.

Units (:class:`lopkit.nets.UnitLayer`): the channels of the first convolution of every
basic block (``block_i``): its kernel slice, its BatchNorm offset as the bias, its
BatchNorm scale / running mean / running variance as per-unit extras (reset to 1 / 0 / 1,
as the official ``ResGnT`` does), and its slice of the block's second kernel as outgoing
weights (``out_axis=-2``). The stem, the second convolutions and the projections write
into the residual stream, which the shortcut and every later block read: a channel there
has no outgoing weights of its own, so those layers expose no units.

References:
  He, Zhang, Ren, Sun. Deep residual learning for image recognition. CVPR 2016.
  Ioffe & Szegedy. Batch normalization. ICML 2015.
  Dohare et al. Loss of plasticity in deep continual learning. Nature 632 (2024),
  Methods "Class-incremental CIFAR-100".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.nets._activations import kaiming_uniform_bound
from lopkit.nets._base import Network
from lopkit.nets._convnet import conv2d
from lopkit.nets._units import UnitLayer, get, replace

BN_EPS = 1e-5
_PAD1 = ((1, 1), (1, 1))
_PAD0 = ((0, 0), (0, 0))


class ResNetTrace(NamedTuple):
    """Per unit layer (``block_i``): ``pre`` ``[B, H, W, C]`` (bn1 output) and ``hidden``
    (after ReLU); ``stats``: {path of a BatchNorm: {"mean", "var"}} the running statistics
    after this batch (training only; empty in evaluation)."""

    pre: list[jax.Array]
    hidden: list[jax.Array]
    stats: dict[tuple[str, ...], dict[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
    """ResNet-18 for CIFAR (Dohare et al. 2024): 3×3 stride-1 stem, no max-pool, BatchNorm."""

    input_shape: tuple[int, ...] = field((32, 32, 3), "image shape (H, W, C)", positive=True)
    widths: tuple[int, ...] = field((64, 128, 256, 512), "channels of each stage", positive=True)
    blocks: tuple[int, ...] = field((2, 2, 2, 2), "basic blocks per stage", positive=True)
    outputs: int = field(100, "number of outputs (classes)", positive=True)
    bn_momentum: float = field(0.1, "m: running stats r ← (1 − m) r + m batch", open_unit=True)
    conv: str = field(
        "im2col", "convolution: im2col (fast in XLA:CPU loops) or xla", choices=("im2col", "xla")
    )
    activation: str = field("relu", "hidden activation (ReLU only)", choices=("relu",))
    dropout: float = field(0.0, "no dropout in this network (must be 0)", open_unit=True)

    def check(self) -> None:
        if len(self.widths) != len(self.blocks):
            raise ConfigError(f"widths {self.widths} and blocks {self.blocks} need one per stage")
        if self.dropout:
            raise ConfigError("the ResNet has no dropout option")
        if len(self.input_shape) != 3:
            raise ConfigError(f"input_shape must be (H, W, C), got {self.input_shape}")


def _bn_params(width: int) -> dict[str, jax.Array]:
    ones, zeros = jnp.ones((width,), jnp.float32), jnp.zeros((width,), jnp.float32)
    return {"scale": ones, "offset": zeros, "mean": zeros, "var": ones}


class ResNet(Network):
    has_stats = True

    """The ResNet as pure functions of a params pytree. Hashable by its config.

    Params: ``{"stem": {"conv": {"w"}, "bn": {…}}, "block_i": {"conv1", "bn1", "conv2",
    "bn2"[, "proj", "proj_bn"]}, "output": {"w": [widths[-1], outputs], "b"}}``.
    """

    def __init__(self, config: ResNetConfig):
        self.config = config
        c = config
        self.block_specs = []  # (c_in, width, stride) per block
        c_in = c.widths[0]
        for stage, (width, count) in enumerate(zip(c.widths, c.blocks, strict=True)):
            for b in range(count):
                stride = 2 if stage > 0 and b == 0 else 1
                self.block_specs.append((c_in, width, stride))
                c_in = width
        n = len(self.block_specs)
        self.names = ["stem"] + [f"block_{i}" for i in range(n)] + ["output"]
        self.unit_layers = tuple(
            UnitLayer(
                name=f"block_{i}",
                units=width,
                incoming=(f"block_{i}", "conv1", "w"),
                bias=(f"block_{i}", "bn1", "offset"),
                outgoing=(f"block_{i}", "conv2", "w"),
                init_bound=kaiming_uniform_bound(9 * c_in, "relu"),
                extra=tuple((f"block_{i}", "bn1", k) for k in ("scale", "mean", "var")),
                extra_reset=(1.0, 0.0, 1.0),
                out_axis=-2,
            )
            for i, (c_in, width, _) in enumerate(self.block_specs)
        )

    def __hash__(self) -> int:
        return hash(self.config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResNet) and other.config == self.config

    @property
    def output_layer(self) -> str:
        return "output"

    # ---- parameters ------------------------------------------------------------------
    def _layer(self, index: int, draw) -> dict[str, Any]:
        """Layer ``names[index]`` with weights ``draw(shape, bound)`` ~ U(−bound, bound)."""
        c = self.config
        name = self.names[index]

        def kernel(k: int, c_in: int, c_out: int) -> dict[str, jax.Array]:
            return {"w": draw((k, k, c_in, c_out), kaiming_uniform_bound(k * k * c_in, "relu"))}

        if name == "stem":
            return {"conv": kernel(3, c.input_shape[2], c.widths[0]), "bn": _bn_params(c.widths[0])}
        if name == "output":
            bound = kaiming_uniform_bound(c.widths[-1], "linear")
            return {
                "w": draw((c.widths[-1], c.outputs), bound),
                "b": jnp.zeros((c.outputs,), jnp.float32),
            }
        c_in, width, stride = self.block_specs[index - 1]
        block = {
            "conv1": kernel(3, c_in, width),
            "bn1": _bn_params(width),
            "conv2": kernel(3, width, width),
            "bn2": _bn_params(width),
        }
        if stride != 1 or c_in != width:
            block["proj"] = kernel(1, c_in, width)
            block["proj_bn"] = _bn_params(width)
        return block

    def init_layer(self, key: jax.Array, index: int) -> dict[str, Any]:
        """Fresh parameters of layer ``names[index]`` (stem, a block, or the output)."""
        keys = iter(jax.random.split(key, 3))
        return self._layer(
            index, lambda shape, b: jax.random.uniform(next(keys), shape, jnp.float32, -b, b)
        )

    def init(self, key: jax.Array) -> dict[str, Any]:
        """Every layer as :meth:`init_layer` draws it, its weights cut from one uniform draw
        (one random computation compiles several times faster on XLA:CPU than one per
        kernel)."""
        shapes: list[tuple[int, ...]] = []
        for i in range(len(self.names)):
            self._layer(i, lambda shape, b: shapes.append(shape) or jnp.zeros(shape))
        total = sum(math.prod(shape) for shape in shapes)
        draws = jax.random.uniform(key, (total,), jnp.float32, -1.0, 1.0)
        offset = [0]

        def take(shape, bound):
            n = math.prod(shape)
            w = draws[offset[0] : offset[0] + n].reshape(shape) * bound
            offset[0] += n
            return w

        return {name: self._layer(i, take) for i, name in enumerate(self.names)}

    # ---- forward ---------------------------------------------------------------------
    def _bn(self, params, path, z, stats):
        """BatchNorm of ``z`` ``[B, H, W, C]`` by the params at ``path``; batch statistics
        (and the new running statistics into ``stats``) when ``stats`` is a dict."""
        p = get(params, path)
        if stats is None:
            mean, var = p["mean"], p["var"]
        else:
            mean, var = z.mean((0, 1, 2)), z.var((0, 1, 2))
            n = z.size // z.shape[-1]
            m = self.config.bn_momentum
            stats[path] = jax.lax.stop_gradient(
                {
                    "mean": (1 - m) * p["mean"] + m * mean,
                    "var": (1 - m) * p["var"] + m * var * n / (n - 1),
                }
            )
        return (z - mean) * jax.lax.rsqrt(var + BN_EPS) * p["scale"] + p["offset"]

    def _forward(self, params, x, stats):
        conv = self.config.conv
        h = conv2d(x, params["stem"]["conv"]["w"], 1, _PAD1, conv)
        h = jax.nn.relu(self._bn(params, ("stem", "bn"), h, stats))
        pre, hidden = [], []
        for i, (_, _, stride) in enumerate(self.block_specs):
            name = f"block_{i}"
            block = params[name]
            z = conv2d(h, block["conv1"]["w"], stride, _PAD1, conv)
            z = self._bn(params, (name, "bn1"), z, stats)
            a = jax.nn.relu(z)
            pre.append(z)
            hidden.append(a)
            out = conv2d(a, block["conv2"]["w"], 1, _PAD1, conv)
            out = self._bn(params, (name, "bn2"), out, stats)
            if "proj" in block:
                h = conv2d(h, block["proj"]["w"], stride, _PAD0, conv)
                h = self._bn(params, (name, "proj_bn"), h, stats)
            h = jax.nn.relu(out + h)
        features = h.mean((1, 2))
        logits = features @ params["output"]["w"] + params["output"]["b"]
        return logits, ResNetTrace(pre, hidden, stats or {})

    def apply(
        self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None
    ) -> tuple[jax.Array, ResNetTrace]:
        """Evaluation: ``x`` ``[B, H, W, C]`` → (``[B, outputs]`` logits, trace); BatchNorm
        uses the running statistics. ``key`` is unused (no dropout)."""
        del key
        return self._forward(params, x, None)

    def train_apply(
        self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None
    ) -> tuple[jax.Array, ResNetTrace]:
        """Training: BatchNorm normalizes by the batch; the trace carries the new running
        statistics (see :meth:`with_stats`)."""
        del key
        return self._forward(params, x, {})

    def with_stats(self, params: dict[str, Any], trace: ResNetTrace) -> dict[str, Any]:
        """``params`` with the running statistics of ``trace`` (from :meth:`train_apply`)."""
        for path, stats in trace.stats.items():
            for k, v in stats.items():
                params = replace(params, (*path, k), v)
        return params
