"""Throughput of the conv net on continual binary tasks: seeds by ``vmap`` or by ``lax.map``.

The engine maps one seed's program over K seeds either with ``vmap`` (one batched program:
per-seed kernels become grouped convolutions) or with ``lax.map`` (the seeds one after
another inside the compiled program: plain convolutions). Which is faster depends on the
backend and the network; this measures both for the continual-ImageNet conv net at batch
100 (SGD with momentum, backprop, the head-reset event), on synthetic images of the
benchmark's shapes (throughput does not depend on pixel values), compilation excluded.
"""

from __future__ import annotations

import numpy as np

from lopkit.bench import chunk_throughput
from lopkit.benchmarks._base import make_optimizer
from lopkit.benchmarks._binary import zero_output_event
from lopkit.benchmarks._classification import accuracy, cross_entropy
from lopkit.engine._learner import Learner
from lopkit.engine._program import Program
from lopkit.methods import Context, compose, remedy_configs
from lopkit.nets._convnet import ConvNet, ConvNetConfig
from lopkit.streams._binary import BinaryStreamConfig, BinaryTasks, ClassImages

SHAPES = {"imagenet32": (32, 32, 3), "fashion_mnist": (28, 28, 1), "digits": (8, 8, 1)}


def _program(image_shape: tuple[int, int, int], seed_map: str, batch: int) -> Program:
    """Backprop on binary tasks over 4 synthetic classes of 600 images; one epoch per bin."""
    rng = np.random.default_rng(0)
    images = ClassImages(
        "synthetic",
        rng.integers(0, 256, (4, 600, *image_shape), dtype=np.uint8),
        rng.integers(0, 256, (4, 100, *image_shape), dtype=np.uint8),
    )
    stream = BinaryTasks(BinaryStreamConfig(batch_size=batch), images)
    padding = "valid" if image_shape[0] >= 28 else "same"
    net = ConvNet(ConvNetConfig(input_shape=image_shape, padding=padding, zero_output=True))
    base = make_optimizer({"optimizer": "sgd", "lr": 0.01, "momentum": 0.9})
    method = compose(["backprop"], remedy_configs(["backprop"], {}, {}), Context(net, 0.01))
    learner = Learner(
        net,
        cross_entropy,
        accuracy,
        method,
        method.transformation(base),
        base,
        (zero_output_event(net.output_layer),),
    )
    epoch = stream.steps_per_epoch
    return Program(stream, learner, 0, epoch, epoch, (), 1, 0, seed_map)


def binary_task_throughput(
    image_shape: tuple[int, int, int] = (32, 32, 3),
    seeds: int = 4,
    bins: int = 1,
    batch: int = 100,
    repeats: int = 1,
) -> dict[str, float]:
    """Seed-steps per second of ``vmap`` and of ``lax.map`` over ``seeds`` seeds (compile
    excluded; best of ``repeats`` calls of ``bins`` epochs each): ``{"vmap": …, "map": …}``."""
    out = {}
    for seed_map in ("vmap", "map"):
        program = _program(image_shape, seed_map, batch)
        out[seed_map] = chunk_throughput(program, np.arange(seeds), bins, repeats)
    return out


def main(seeds: int = 4, repeats: int = 1) -> int:
    """Print both figures for each benchmark image shape."""
    print(f"conv net on binary tasks, batch 100, K = {seeds}: seed-steps/s, compile excluded")
    print(f"  {'images':<14} {'vmap':>10} {'map':>10} {'map/vmap':>9}")
    for name, shape in SHAPES.items():
        r = binary_task_throughput(shape, seeds=seeds, repeats=repeats)
        label = f"{name} {shape[0]}×{shape[1]}×{shape[2]}"
        print(f"  {label:<14} {r['vmap']:>10,.1f} {r['map']:>10,.1f} {r['map'] / r['vmap']:>8.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
