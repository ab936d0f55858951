"""Continual binary tasks (continual ImageNet) as a benchmark: the stream, the conv net, SGD.

Defaults are the paper's (Dohare et al. 2024, Methods "Continual ImageNet"; official
``lop/imagenet``): 32×32 ImageNet, task t = classes (2t, 2t+1) of a per-seed class order,
600 / 100 train / test images per class, 250 epochs per task in minibatches of 100, SGD with
momentum 0.9 and step size 0.01, cross-entropy; the conv net of
:mod:`lopkit.nets._convnet`. At the first step of every task the output layer is set to
zero and its optimizer moments too (a protocol event, :attr:`Problem.boundary_events`); it
also starts at zero (``zero_output``), as the official code zeroes it before task 0.

Reported: the online training accuracy per task (``train_accuracy``: predictions before each
update, averaged over the task) and, at the end of each task, ``test_accuracy`` on the
task's held-out images — one bin per task (``bin_size = metrics_every = steps per task``).

Seeds are mapped with ``lax.map`` (one after another inside the compiled program): on CPU
this is faster than ``vmap`` for this network (``lopkit.bench.conv``; docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from lopkit import _config
from lopkit._config import field, to_dict
from lopkit.benchmarks._base import Benchmark, OptimizerConfig, Problem, optimizer_settings
from lopkit.benchmarks._classification import accuracy, cross_entropy
from lopkit.engine import _probes
from lopkit.methods._base import BoundaryEvent
from lopkit.methods._resets import replace_layer_everywhere
from lopkit.nets._activations import ACTIVATIONS
from lopkit.nets._convnet import ConvNet, ConvNetConfig
from lopkit.streams._binary import BinaryStreamConfig, BinaryTasks

BLOCK_FLOATS = 4_000_000  # at most this many input floats generated at once per seed
SEED_MAP = "map"  # measured faster than vmap for this net on CPU (lopkit.bench.conv)


@dataclasses.dataclass(frozen=True)
class BinaryConfig(BinaryStreamConfig, OptimizerConfig):
    """Continual binary tasks (Dohare et al. 2024, continual ImageNet): stream, conv net and
    optimizer (SGD, momentum 0.9, step size 0.01)."""

    momentum: float = field(0.9, "SGD momentum", open_unit=True)
    channels: tuple[int, ...] = field((32, 64, 128), "conv layer channels", positive=True)
    kernels: tuple[int, ...] = field((5, 3, 3), "conv kernel sizes", positive=True)
    hidden: tuple[int, ...] = field((128, 128), "fc hidden widths", positive=True)
    padding: str = field(
        "valid", "conv padding: valid (paper; ≥ 28×28 images) or same", choices=("valid", "same")
    )
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))


def _stream_config(c: BinaryConfig) -> BinaryStreamConfig:
    d = to_dict(c)
    return BinaryStreamConfig(**{f.name: d[f.name] for f in dataclasses.fields(BinaryStreamConfig)})


def zero_output_event(name: str) -> BoundaryEvent:
    """The protocol's task-start event: output layer ``name`` and its optimizer moments ← 0."""

    def apply(params: dict[str, Any], opt_state: Any, key: jax.Array):
        del key
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params[name])
        return replace_layer_everywhere(params, opt_state, name, zeros)

    return BoundaryEvent(apply)


def make_convnet(network: dict[str, Any]) -> ConvNet:
    """The conv net of a network dict (unknown keys, e.g. an MLP-only remedy's, are errors)."""
    return ConvNet(_config.build(ConvNetConfig, network))


def build(c: BinaryConfig) -> Problem:
    stream = BinaryTasks(_stream_config(c))
    network = {
        "input_shape": stream.image_shape,
        "channels": c.channels,
        "kernels": c.kernels,
        "hidden": c.hidden,
        "outputs": 2,
        "padding": c.padding,
        "activation": c.activation,
        "zero_output": True,
    }
    net = make_convnet(network)
    return Problem(
        stream=stream,
        network=network,
        make_network=make_convnet,
        loss_fn=cross_entropy,
        error_fn=accuracy,
        error_name="train_accuracy",
        optimizer=optimizer_settings(c),
        boundary_events=(zero_output_event(net.output_layer),),
        seed_map=SEED_MAP,
    )


def block_size(steps_per_task: int, batch: int, image_shape: tuple[int, ...]) -> int:
    """The largest divisor of the task length whose block holds ≤ BLOCK_FLOATS input floats."""
    per_step = batch * math.prod(image_shape)
    fits = [d for d in range(1, steps_per_task + 1) if steps_per_task % d == 0]
    return max([d for d in fits if d * per_step <= BLOCK_FLOATS] or [1])


def run_defaults(c: BinaryConfig) -> dict[str, Any]:
    """One bin per task, test accuracy (and the default diagnostics) at the end of each; ten
    tasks; blocks small enough for image batches."""
    stream = BinaryTasks(_stream_config(c))
    s = stream.steps_per_task
    return {
        "steps": 10 * s,
        "bin_size": s,
        "metrics_every": s,
        "block_size": block_size(s, c.batch_size, stream.image_shape),
        "metrics": ("test_accuracy", *_probes.DEFAULT_PROBES),
        "probe_size": 1_000,
    }


BINARY = Benchmark(
    name="binary",
    summary="continual binary tasks (continual ImageNet): class pairs, conv net, head reset",
    source="Dohare et al. 2024 (Nature), Methods 'Continual ImageNet'",
    config=BinaryConfig,
    build=build,
    # The official cfg files (lop/imagenet/cfg): CBP with the adaptable-contribution utility,
    # ρ 3e-4, m 100, η 0.99, the fraction carried over (ConvGnT always accumulates); L2 3e-6
    # (at step size 0.03 there); shrink-and-perturb weight decay 1e-5, noise 1e-5.
    remedy_defaults={
        "cbp": {
            "replacement_rate": 3e-4,
            "maturity_threshold": 100,
            "decay_rate": 0.99,
            "utility": "adaptable_contribution",
            "accumulate": True,
        },
        "l2": {"weight_decay": 3e-6},
        "shrink_perturb": {"weight_decay": 1e-5, "noise_std": 1e-5},
    },
    run_defaults=run_defaults,
)
