"""`make bench`, RL section: PPO aggregate env-steps/s, and how it splits into rollout and update.

The control benchmark's quick task (CartPole, policy and value nets [64, 64]) with the
official update schedule (rollout 2,048 steps, 10 epochs × 16 minibatches of 128), K seeds
as one program: env-steps per second over all seeds (compilation excluded), the rollout
alone (K rollouts with the current policies, vmapped, compiled the same way), and the
update as the rest. Target (docs/design.md §14): ≥ 100,000 aggregate env-steps/s at K = 64 on 2
CPU cores; the official code runs about 580 env-steps/s per process on Ant.

    python -m lopkit.bench.rl [K …]
"""

from __future__ import annotations

import functools
import sys
import time

import jax
import jax.numpy as jnp

from lopkit._experiment import make_experiment
from lopkit._seeds import SEED_AXIS
from lopkit.engine._program import COMPILER_OPTIONS

ROLLOUT = 2048


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def ppo_throughput(
    seeds: int, env: str = "cartpole", hidden: str = "64,64", iterations: int = 2, repeats: int = 2
) -> dict[str, float]:
    """Aggregate env-steps/s of the whole program, of the rollout alone, and of the update."""
    e = make_experiment(
        "control", "backprop", {"env": env, "hidden": hidden}, seeds=seeds,
        steps=ROLLOUT * iterations, bin_size=ROLLOUT, metrics=(), metrics_every=0,
    )  # fmt: skip
    program, _ = e.build()
    seed_ids = jnp.asarray(e.seed_ids)
    state = program.init(seed_ids)
    state, errors, _ = program.chunk(state, jnp.int32(0), iterations)  # compile, warm up
    jax.block_until_ready(errors)
    holder = {"state": state, "bin": iterations}

    def whole():
        s, err, _ = program.chunk(holder["state"], jnp.int32(holder["bin"]), iterations)
        holder["state"], holder["bin"] = s, holder["bin"] + iterations
        return err

    total = _best(whole, repeats)

    @functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
    def rollouts(state):
        def one(s):
            def body(stream_state, b):
                predict = functools.partial(program.learner.net.apply, s["learner"]["params"])
                key = jax.random.fold_in(s["keys"]["stream"], b)
                stream_state, block = program.stream.block(stream_state, key, b, ROLLOUT, predict)
                return stream_state, block.x.sum()

            return jax.lax.scan(body, s["stream"], jnp.arange(iterations))[1]

        return jax.vmap(one, axis_name=SEED_AXIS)(state)

    jax.block_until_ready(rollouts(holder["state"]))
    rollout = _best(lambda: rollouts(holder["state"]), repeats)
    steps = seeds * ROLLOUT * iterations
    update = max(total - rollout, 1e-9)
    return {
        "seeds": seeds,
        "env_steps_per_second": steps / total,
        "rollout_share": rollout / total,
        "rollout_steps_per_second": steps / rollout,
        "update_steps_per_second": steps / update,
    }


def format_rows(rows: list[dict[str, float]]) -> str:
    lines = [
        "PPO on CartPole, policy and value nets [64, 64], rollout 2,048, 10 epochs × 16 "
        "minibatches, aggregate env-steps/s (compile excluded):",
        f"  {'K':>4} {'total':>12} {'rollout':>12} {'update':>12} {'rollout share':>14}",
    ]
    for r in rows:
        lines.append(
            f"  {r['seeds']:>4} {r['env_steps_per_second']:>12,.0f} "
            f"{r['rollout_steps_per_second']:>12,.0f} {r['update_steps_per_second']:>12,.0f} "
            f"{100 * r['rollout_share']:>13.0f}%"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None, repeats: int = 2) -> int:
    ks = [int(a) for a in (argv or [])] or [1, 16, 64]
    print(format_rows([ppo_throughput(k, repeats=repeats) for k in ks]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
