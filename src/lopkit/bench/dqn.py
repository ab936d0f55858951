"""`make bench`, DQN section: aggregate env-steps/s of DQN on MinAtar, and replay memory.

The minatar benchmark's defaults (Breakout, MinAtar's network: conv 16 × 3×3, fc 128;
Dopamine's schedule: one update of 32 every 4 env steps), K seeds as one program, with
learning on from the first block (``min_replay`` = the batch) so every block pays for its
update: env-steps per second over all seeds, compilation excluded, and the replay
buffer's bytes per seed at the default capacity (100,000 transitions, bit-packed maps).

    python -m lopkit.bench.dqn [K …]
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp

from lopkit._experiment import make_experiment

STEPS = 4_000  # env steps per seed per timed chunk


def dqn_throughput(seeds: int, env: str = "breakout", repeats: int = 2) -> dict[str, float]:
    """Aggregate env-steps/s of the whole program and the replay buffer's bytes per seed."""
    e = make_experiment(
        "minatar", "backprop", {"env": env, "min_replay": "32", "replay_capacity": "100000"},
        seeds=seeds, steps=4 * STEPS, bin_size=STEPS, metrics=(), metrics_every=0,
    )  # fmt: skip
    program, _ = e.build()
    state = program.init(jnp.asarray(e.seed_ids))
    state, errors, _ = program.chunk(state, jnp.int32(0), 1)  # compile, warm up
    jax.block_until_ready(errors)
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        state, errors, _ = program.chunk(state, jnp.int32(1 + r), 1)
        jax.block_until_ready(errors)
        best = min(best, time.perf_counter() - start)
    return {
        "seeds": seeds,
        "env_steps_per_second": seeds * STEPS / best,
        "replay_bytes_per_seed": program.stream.replay.bytes_per_seed,
    }


def format_rows(rows: list[dict[str, float]]) -> str:
    lines = [
        "DQN on MinAtar Breakout (conv 16, fc 128; one update of 32 per 4 env steps), "
        "aggregate env-steps/s (compile excluded):",
        f"  {'K':>4} {'env-steps/s':>12} {'replay MB/seed':>15}",
    ]
    for r in rows:
        lines.append(
            f"  {r['seeds']:>4} {r['env_steps_per_second']:>12,.0f} "
            f"{r['replay_bytes_per_seed'] / 1e6:>15.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None, repeats: int = 2) -> int:
    ks = [int(a) for a in (argv or [])] or [1, 16, 64]
    print(format_rows([dqn_throughput(k, repeats=repeats) for k in ks]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
