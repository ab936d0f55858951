"""`make bench`, permuted inputs: the paper's 784→2000→2000→2000→10 MLP at batch 1.

Measured (never asserted by tests) against the target of docs/design.md §14: within 2× of
the machine's own limit for that network, reported as achieved FLOP/s and bytes/s against
a matmul and bandwidth measurement taken in the same run.

What runs: the engine's compiled program (the permuted stream's block gather, then the
scanned learner) for one seed, SGD, backprop, on synthetic uint8 images of MNIST's shape
(60,000 × 784), so the measurement needs no data files. Compilation is excluded (one bin
runs first).

Cost model of one SGD step at batch 1 (P_w = 9,588,000 weights, 38.4 MB in float32):

* FLOPs: forward 2·P_w (one multiply-add per weight); backward 2·P_w for the weight
  gradient (an outer product) and 2·(P_w − 784·2000) to propagate δ (not into the
  input): ≈ 6·P_w = 55 MFLOP.
* bytes: every weight read in the forward pass, read again to propagate δ, and read and
  written once in the update (the gradient's outer product fused into ``w ← w − α·x δᵀ``,
  so no gradient array is stored): 4 passes ≈ 150 MB. Biases and activations are
  negligible. (A 3-pass model, 115 MB, counts the update as one pass.)

At batch 1 every matmul is a matrix–vector product, so the step is bandwidth-bound: the
limit is ``bandwidth / bytes_per_step``. Bandwidth is measured as a copy of an array of
the size of the weights (38 MB: the working set, which may sit in a large L3 cache) and of
a 1 GiB array (main memory); peak FLOP/s as a 2000×2000 float32 matmul.

A second figure compiles the same program with XLA:CPU's copy insertion using region
analysis (``xla_cpu_copy_insertion_use_region_analysis``) set explicitly. Without it XLA
copies the loop-carried weight matrices in every step of the scan (the update writes a
weight before the backward pass has read it, as far as copy insertion can tell): two extra
passes over the 2000×2000 weights per step. The engine sets the option itself
(``engine._program.COMPILER_OPTIONS``), so the two figures should agree; a gap means the
engine's default lost it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lopkit._seeds import SEED_AXIS
from lopkit.benchmarks import make_optimizer
from lopkit.benchmarks._classification import accuracy, cross_entropy
from lopkit.engine._learner import Learner
from lopkit.engine._program import Program, chunk_capacity
from lopkit.methods import Context, compose, remedy_configs
from lopkit.nets import MLP, MLPConfig
from lopkit.streams._labeled import LabeledArrays
from lopkit.streams._permuted import PermutedInputs, PermutedStreamConfig

PAPER_SIZES = (784, 2000, 2000, 2000, 10)
PASSES = 4  # weight passes per SGD step in the bytes model (see the module docstring)
REGION_ANALYSIS = {"xla_cpu_copy_insertion_use_region_analysis": True}


def _best(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (which blocks until done)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """Bytes/s streaming a float32 array of ``nbytes`` through the cores: read and written
    (2·nbytes per pass), the better of a numpy copy into a preallocated array and a jitted
    in-place scaling (donated buffer, as the SGD update of a weight is)."""
    src = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    t_np = _best(lambda: np.copyto(dst, src), repeats)
    scale = jax.jit(lambda a: a * np.float32(1.0000001), donate_argnums=0)
    held = [scale(jnp.asarray(src))]

    def in_place():
        held[0] = scale(held[0])
        held[0].block_until_ready()

    in_place()
    t_jax = _best(in_place, repeats)
    return 2 * nbytes / min(t_np, t_jax)


def matmul_flops(n: int = 2000, repeats: int = 5) -> float:
    """FLOP/s of an ``n × n`` float32 matmul (2n³ FLOPs), jitted."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    return 2 * n**3 / _best(lambda: mm(a).block_until_ready(), repeats)


def _program(sizes: tuple[int, ...], bin_size: int, lr: float = 0.003) -> Program:
    """The engine's program for one seed of permuted inputs on synthetic images."""
    rng = np.random.default_rng(0)
    n, d, classes = 60_000, sizes[0], sizes[-1]
    side = int(round(np.sqrt(d)))
    arrays = LabeledArrays(
        name="synthetic",
        x_train=rng.integers(0, 256, (n, d), dtype=np.uint8),
        y_train=rng.integers(0, classes, n, dtype=np.int32),
        x_test=rng.integers(0, 256, (100, d), dtype=np.uint8),
        y_test=rng.integers(0, classes, 100, dtype=np.int32),
        image_shape=(side, side, 1) if side * side == d else (1, d, 1),
        num_classes=classes,
    )
    stream = PermutedInputs(PermutedStreamConfig(examples_per_task=n), arrays=arrays)
    net = MLP(MLPConfig(sizes=sizes))
    base = make_optimizer({"optimizer": "sgd", "lr": lr, "momentum": 0.0})
    method = compose(["backprop"], remedy_configs(["backprop"], {}), Context(net, lr))
    learner = Learner(net, cross_entropy, accuracy, method, method.transformation(base), base)
    return Program(stream, learner, 0, bin_size, bin_size, (), 1, 0)


def _steps_per_second(
    program: Program, repeats: int, compiler_options=None, seeds: int = 1
) -> float:
    """Best-of-``repeats`` seed-steps/s of one bin for ``seeds`` seeds (ids 0 …),
    compilation excluded."""
    if compiler_options is None:
        chunk = lambda state, b: program.chunk(state, b, 1)
    else:  # the engine's chunk (vmap over seeds of run_bins), compiled with the options

        def run(constants, state, b):
            bound = program.bound(constants)

            def one_bin(s):
                return bound.run_bins(s, b, 1, chunk_capacity(1))

            return jax.vmap(one_bin, axis_name=SEED_AXIS)(state)

        compiled = jax.jit(run, donate_argnums=1, compiler_options=compiler_options)
        chunk = lambda state, b: compiled(program.constants, state, b)
    state = program.init(jnp.arange(seeds, dtype=jnp.int32))
    state, errors, _ = chunk(state, jnp.int32(0))  # compile and warm up
    errors.block_until_ready()
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        state, errors, _ = chunk(state, jnp.int32(r + 1))
        errors.block_until_ready()
        best = min(best, time.perf_counter() - start)
    return seeds * program.bin_size / best


def permuted_throughput(
    sizes: tuple[int, ...] = PAPER_SIZES,
    bin_size: int = 500,
    repeats: int = 2,
    memory_bytes: int = 1 << 30,
) -> dict[str, Any]:
    """Steps/s of one seed at batch 1 (SGD), with the achieved FLOP/s and bytes/s and the
    machine's own limits measured in the same call (see the module docstring).

    Returns a dict: steps_per_second (the engine as it is), steps_per_second_region_analysis
    (compiled with :data:`REGION_ANALYSIS`), flops_per_step, bytes_per_step, achieved_flops,
    achieved_bytes (at steps_per_second), matmul_flops, copy_bandwidth_working_set,
    copy_bandwidth_memory (an array of ``memory_bytes``), bandwidth_limit_steps
    (working-set copy bandwidth / bytes_per_step), fraction_of_limit.
    """
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    flops = 6 * weights - 2 * sizes[0] * sizes[1]
    nbytes = PASSES * 4 * weights
    program = _program(sizes, bin_size)
    rate = _steps_per_second(program, repeats)
    rate_region = _steps_per_second(program, repeats, REGION_ANALYSIS)
    bw_ws = copy_bandwidth(4 * weights)
    bw_mem = copy_bandwidth(memory_bytes, repeats=3)
    return {
        "steps_per_second": rate,
        "steps_per_second_region_analysis": rate_region,
        "flops_per_step": flops,
        "bytes_per_step": nbytes,
        "achieved_flops": rate * flops,
        "achieved_bytes": rate * nbytes,
        "matmul_flops": matmul_flops(),
        "copy_bandwidth_working_set": bw_ws,
        "copy_bandwidth_memory": bw_mem,
        "bandwidth_limit_steps": bw_ws / nbytes,
        "fraction_of_limit": rate * nbytes / bw_ws,
    }


def format_throughput(r: dict[str, Any]) -> str:
    """The lines `lopkit bench` prints for :func:`permuted_throughput`."""
    g = 1e9
    return "\n".join(
        [
            "permuted inputs, 784→2000→2000→2000→10, batch 1, SGD, 1 seed, compile excluded:",
            f"  {r['steps_per_second']:,.0f} steps/s (target ≥ 130 on 2 cores); "
            f"{r['steps_per_second_region_analysis']:,.0f} with XLA region-analysis copy "
            "insertion",
            f"  achieved {r['achieved_flops'] / g:.1f} GFLOP/s "
            f"({r['flops_per_step'] / 1e6:.0f} MFLOP/step) vs matmul "
            f"{r['matmul_flops'] / g:.1f} GFLOP/s",
            f"  achieved {r['achieved_bytes'] / g:.1f} GB/s "
            f"({r['bytes_per_step'] / 1e6:.0f} MB/step: {PASSES} passes over the weights) vs "
            f"copy {r['copy_bandwidth_working_set'] / g:.1f} GB/s at the weights' size, "
            f"{r['copy_bandwidth_memory'] / g:.1f} GB/s at 1 GiB",
            f"  bandwidth limit {r['bandwidth_limit_steps']:,.0f} steps/s; "
            f"achieved {100 * r['fraction_of_limit']:.0f}% of it",
        ]
    )


SMALL_SIZES = (784, 100, 100, 100, 10)


def small_net_throughput(
    seeds: int = 10, sizes: tuple[int, ...] = SMALL_SIZES, bin_size: int = 2000, repeats: int = 2
) -> dict[str, Any]:
    """The paper's small permuted-MNIST net (784-100-100-100-10) at batch 1, SGD, K seeds as
    one program, seeds mapped both ways the engine offers: ``map`` (one seed after another:
    every matrix–vector product alone, the permuted benchmark's setting) and ``vmap`` (the
    seed-batched formulation: one batched product per layer for all seeds). Seed-steps/s,
    compile excluded, against the bandwidth limit measured in the same call: a copy of
    ``seeds`` × the weights' size (the working set: it sits in the caches), over the
    4-pass bytes model of one step (see the module docstring)."""
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    nbytes = PASSES * 4 * weights
    one = _program(sizes, bin_size)
    out: dict[str, Any] = {"seeds": seeds, "bytes_per_step": nbytes}
    for seed_map in ("map", "vmap"):
        program = dataclasses.replace(one, seed_map=seed_map)
        out[seed_map] = _steps_per_second(program, repeats, seeds=seeds)
    bandwidth = copy_bandwidth(seeds * 4 * weights)
    out["copy_bandwidth_working_set"] = bandwidth
    out["bandwidth_limit_seed_steps"] = bandwidth / nbytes
    return out


def format_small_net(r: dict[str, Any]) -> str:
    """The lines `lopkit bench` prints for :func:`small_net_throughput`."""
    limit = r["bandwidth_limit_seed_steps"]
    lines = [
        f"permuted inputs, small net 784→100→100→100→10, batch 1, SGD, {r['seeds']} seeds, "
        "compile excluded:",
        f"  bandwidth limit {limit:,.0f} seed-steps/s (copy "
        f"{r['copy_bandwidth_working_set'] / 1e9:.1f} GB/s at {r['seeds']} × the weights' size, "
        f"{r['bytes_per_step'] / 1e6:.1f} MB/step)",
    ]
    for seed_map in ("map", "vmap"):
        lines.append(
            f"  {seed_map:<5} {r[seed_map]:>9,.0f} seed-steps/s = {100 * r[seed_map] / limit:.0f}% "
            "of the limit (target ≥ 50%)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_throughput(permuted_throughput()))
    print(format_small_net(small_net_throughput()))
