"""Env-alone throughput of Slippery Ant: ``python -m lopkit.mujoco_envs.bench``.

Targets and the Ant specification: docs/design.md §14, §13.

Random actions U(-1, 1), auto-reset included, no policy and no update: the simulator's share
of an RL iteration. Host: K envs with and without threads; MJX (``--mjx``): K envs vmapped
in one jitted step (compile time excluded, reported separately).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lopkit.mujoco_envs._ant import AntConfig, AntEnvs


def host_steps_per_second(k: int, threads: int, seconds: float = 3.0) -> tuple[float, float]:
    """(aggregate env-steps/s, CPU-seconds per second) of ``AntEnvs`` with ``k`` envs.

    The second number is this process's CPU time over wall time: on a shared machine it
    says how much CPU the run got (2.0 = both cores of 2), so rates can be compared.
    """
    envs = AntEnvs(list(range(k)), config=AntConfig(threads=threads))
    envs.reset()
    rng = np.random.default_rng(0)
    envs.step(rng.uniform(-1, 1, (k, 8)))
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        envs.step(rng.uniform(-1, 1, (k, 8)))
        steps += 1
    wall = time.perf_counter() - start
    envs.close()
    return steps * k / wall, (time.process_time() - cpu) / wall


def mjx_steps_per_second(k: int, steps: int = 20) -> tuple[float, float]:
    """(env-steps/s, compile seconds) of ``k`` vmapped MJX Ant envs, one jitted step."""
    import jax
    import jax.numpy as jnp

    from lopkit.mujoco_envs import MjxAnt

    env = MjxAnt()
    keys = jax.random.split(jax.random.key(0), k)
    friction = jnp.ones(k, jnp.float32)
    _, state = jax.jit(jax.vmap(env.reset))(keys, friction)
    step = jax.jit(jax.vmap(env.step))
    actions = jax.random.uniform(jax.random.key(1), (steps + 1, k, 8), minval=-1, maxval=1)
    start = time.perf_counter()
    jax.block_until_ready(step(state, actions[0], friction))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for a in actions[1:]:
        _, state, *_ = step(state, a, friction)
    jax.block_until_ready(state)
    return steps * k / (time.perf_counter() - start), compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--mjx", type=int, nargs="*", default=None, help="MJX at these K")
    args = parser.parse_args()
    for k in args.envs:
        for threads in (1,) if k == 1 else (1, 0):
            rate, cpu = host_steps_per_second(k, threads, args.seconds)
            label = "no threads" if threads == 1 else "threads"
            print(
                f"host K={k:4d} {label:10s} {rate:8.0f} env-steps/s (CPU {cpu:.2f} cores, "
                f"{rate / cpu:6.0f} per CPU-second)",
                flush=True,
            )
    for k in args.mjx or ():
        rate, compile_s = mjx_steps_per_second(k)
        print(f"mjx  K={k:4d} {rate:8.0f} env-steps/s (compile {compile_s:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
