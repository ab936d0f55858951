"""`make bench`, Ant section: PPO on MuJoCo Ant, aggregate env-steps/s, host and MJX back-ends.

The ``ant`` benchmark with the official settings (policy and value nets [256, 256], rollout
2,048, 10 epochs × 16 minibatches), K seeds as one program: env-steps per second over all
seeds for the whole iteration (policy + env + update; one rollout per call, compilation
excluded) and for the env alone (random actions, auto-reset, no policy:
:mod:`lopkit.mujoco_envs.bench`). The process's CPU time over wall time is printed beside
each figure: on a shared machine it says how much of the CPUs the measurement got.
Target (docs/design.md §14): host ≥ 3,000 aggregate env-steps/s at K = 8 on 2 CPU cores including
updates; the official code runs about 580 env-steps/s per process.

MJX (``--mjx``) is built for accelerators; on a CPU its rollouts are slow and its compile
long, so there it runs a shorter rollout (``--mjx-rollout``, default 256 on a CPU, 2,048
on an accelerator) with the official 10 × 16 minibatches.

    python -m lopkit.bench.ant [--seeds 1 8 32] [--blocks 3] [--mjx]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from lopkit._experiment import make_experiment


def ppo_throughput(
    seeds: int, backend: str = "host", rollout: int = 2048, blocks: int = 3
) -> dict[str, float]:
    """Aggregate env-steps/s of PPO iterations (policy + env + update), after one iteration
    that compiles: the median over ``blocks`` iterations timed one by one (on a shared
    machine one iteration's figure moves with the load), their range, and the CPU cores
    the process got meanwhile."""
    e = make_experiment(
        "ant", "backprop", {"backend": backend, "rollout_steps": str(rollout)}, seeds=seeds,
        steps=rollout * (1 + blocks), bin_size=rollout, metrics=(), metrics_every=0,
    )  # fmt: skip
    program, _ = e.build()
    state = program.init(jnp.asarray(e.seed_ids))
    start = time.perf_counter()
    state, errors, _ = program.chunk(state, jnp.int32(0), 1)
    jax.block_until_ready(errors)
    compile_s = time.perf_counter() - start
    rates, cpu, wall = [], time.process_time(), time.perf_counter()
    for b in range(1, 1 + blocks):
        start = time.perf_counter()
        state, errors, _ = program.chunk(state, jnp.int32(b), 1)
        jax.block_until_ready(errors)
        rates.append(seeds * rollout / (time.perf_counter() - start))
    return {
        "seeds": seeds,
        "env_steps_per_second": statistics.median(rates),
        "range": (min(rates), max(rates)),
        "cpu": (time.process_time() - cpu) / (time.perf_counter() - wall),
        "first_call_s": compile_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--mjx", action="store_true", help="also the mjx back-end")
    parser.add_argument("--mjx-rollout", type=int, default=0, help="MJX rollout (0: auto)")
    parser.add_argument("--seconds", type=float, default=3.0, help="env-alone timing")
    parser.add_argument("--blocks", type=int, default=3, help="host iterations timed")
    args = parser.parse_args(argv)
    from lopkit.mujoco_envs.bench import host_steps_per_second, mjx_steps_per_second

    print(
        "PPO on Ant (ant benchmark, nets [256, 256], 10 epochs × 16 minibatches), aggregate "
        f"env-steps/s, compile excluded, host: median (range) of {args.blocks} iterations; "
        "CPU = cores this process got:"
    )
    head = f"  {'backend':<8} {'K':>4} {'policy+env+update':>18} {'(range)':>15} {'CPU':>5}"
    print(f"{head} {'env alone':>10} {'CPU':>5}")
    for k in args.seeds:
        r = ppo_throughput(k, "host", blocks=args.blocks)
        env, cpu = host_steps_per_second(k, 0, args.seconds)
        span = "({:,.0f}–{:,.0f})".format(*r["range"])
        print(
            f"  {'host':<8} {k:>4} {r['env_steps_per_second']:>18,.0f} {span:>15} "
            f"{r['cpu']:>5.2f} {env:>10,.0f} {cpu:>5.2f}",
            flush=True,
        )
    if args.mjx:
        accelerator = jax.devices()[0].platform != "cpu"
        rollout = args.mjx_rollout or (2048 if accelerator else 256)
        # On a CPU, MJX's compile for 32 Ants ran out of LLVM memory on a 24 GiB machine:
        # there it stops at 8 (the accelerator path is what MJX is for).
        ks = args.seeds if accelerator else [k for k in args.seeds if k <= 8]
        print(f"  mjx on {jax.devices()[0].platform}, rollout {rollout}, K = {ks}:")
        for k in ks:
            r = ppo_throughput(k, "mjx", rollout, blocks=1)
            env, compile_s = mjx_steps_per_second(k)
            print(
                f"  {'mjx':<8} {k:>4} {r['env_steps_per_second']:>18,.0f} {'':>15} "
                f"{r['cpu']:>5.2f} {env:>10,.0f}       (first call {r['first_call_s']:.0f} s, "
                f"env compile {compile_s:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
