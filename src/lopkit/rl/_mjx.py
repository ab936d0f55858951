"""Slippery Ant in MuJoCo XLA as a compiled rollout stream (``ant --set backend=mjx``).

The same ``ant.xml`` as the host back-end, in ``mujoco.mjx`` inside the compiled program
(:class:`lopkit.mujoco_envs.MjxAnt`): one block is one rollout of the learner's current
policy, scanned; the friction is a traced per-seed value written into the model at every
step (a change never recompiles). The schedule is the official rule of the host back-end
(:func:`lopkit.mujoco_envs.advance_traced`: a change at the first episode end more than
``change_every`` steps after the previous one, for the next episode). The values differ
from the host back-end's: seed ``k``'s value ``i`` is drawn log-uniformly on the range from
``fold_in(change key, i)`` (JAX's PRNG inside the program) rather than from numpy's
``friction_sequence`` — the same distribution, independent and reproducible per seed.

One seed's stream state::

    {"env": MjxAntState, "obs": [27], "index": int32 (friction changes so far),
     "last_change": int32, "steps": int32 env steps taken, "episode_return": float32,
     "episode_length": int32, "recent": [n, 27] the last rollout's observations,
     "change_key"}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from lopkit.rl._ppo import PPOConfig, log_prob, sample
from lopkit.rl._rollout import PPOBlocks, ppo_batches
from lopkit.streams._base import Block


@dataclasses.dataclass(frozen=True, eq=False)
class MjxRolloutStream(PPOBlocks):
    """Ant-v4 in MJX for one seed, with its friction schedule, played by the learner."""

    friction: Any  # lopkit.mujoco_envs.FrictionConfig
    ppo: PPOConfig
    env_config: Any = None  # lopkit.mujoco_envs.AntConfig (None: gymnasium's defaults)

    reads_learner = True
    probe_targets = False
    step_unit = "env-step"
    discrete = False
    observations = 27
    actions = 8
    records = ("return", "episode_length", "task", "friction")

    def __post_init__(self):
        from lopkit.mujoco_envs import MjxAnt

        object.__setattr__(self, "env", MjxAnt(self.env_config))

    def value(self, state: dict[str, Any]) -> jax.Array:
        """The friction in effect: value ``index`` of the seed's sequence."""
        f = self.friction
        if f.schedule == "constant":
            return jnp.asarray(f.constant_value, jnp.float32)
        u = jax.random.uniform(jax.random.fold_in(state["change_key"], state["index"]), ())
        low, high = math.log(f.low), math.log(f.high)
        return jnp.clip(jnp.exp(low + u * (high - low)), f.low, f.high).astype(jnp.float32)

    def init(self, key: jax.Array) -> dict[str, Any]:
        state = {
            "index": jnp.zeros((), jnp.int32),
            "last_change": jnp.zeros((), jnp.int32),
            "steps": jnp.zeros((), jnp.int32),
            "episode_return": jnp.zeros((), jnp.float32),
            "episode_length": jnp.zeros((), jnp.int32),
            "recent": jnp.zeros((self.ppo.batch, self.observations), jnp.float32),
            "change_key": jax.random.fold_in(key, 1),
        }
        obs, env = self.env.reset(jax.random.fold_in(key, 0), self.value(state))
        return {**state, "env": env, "obs": obs.astype(jnp.float32)}

    def _env_step(self, state: dict[str, Any], key: jax.Array, predict):
        from lopkit.mujoco_envs import advance_traced

        k_act, k_reset = jax.random.split(key)
        x = state["obs"]
        out, _ = predict(x[None])
        action = sample(k_act, out, False)
        obs, env, reward, terminated, truncated, _ = self.env.step_autoreset(
            k_reset, state["env"], action[0], self.value(state)
        )
        done = terminated | truncated  # truncation as terminal (the official setting)
        ep_return = state["episode_return"] + reward
        ep_length = state["episode_length"] + 1
        ended = (
            jnp.where(done, ep_return, 0.0),
            jnp.where(done, ep_length, 0).astype(jnp.float32),
            done.astype(jnp.float32),
        )
        index, last = advance_traced(
            self.friction, state["index"], state["last_change"], state["steps"], done
        )
        state = {
            **state,
            "env": env,
            "obs": obs.astype(jnp.float32),
            "index": index.astype(jnp.int32),
            "last_change": last.astype(jnp.int32),
            "steps": state["steps"] + 1,
            "episode_return": jnp.where(done, 0.0, ep_return),
            "episode_length": jnp.where(done, 0, ep_length),
        }
        transition = {
            "x": x[None],
            "action": action,
            "log_prob": log_prob(out, action, False),
            "value": out["value"],
            "reward": reward[None].astype(jnp.float32),
            "done": done[None],
        }
        return state, transition, ended

    def block(self, state: dict[str, Any], key: jax.Array, start, n: int, predict):
        """One rollout of ``n`` env steps as ``epochs × minibatches`` PPO updates."""
        del start
        ppo = self.ppo
        state, (ret_sum, len_sum, count), traj, k_perm = self._play(state, key, predict)
        last_value = predict(state["obs"][None])[0]["value"]
        recent, x, batches = ppo_batches(ppo, traj, last_value, k_perm)
        state = {**state, "recent": recent}
        one = jnp.ones((), jnp.float32)
        sums = jnp.stack([ret_sum, len_sum, state["index"].astype(jnp.float32), self.value(state)])
        counts = jnp.stack([count, count, one, one])
        task = jnp.full((ppo.updates,), state["index"], jnp.int32)
        return state, Block(x, batches, task, (sums, counts))

    def probe(self, state: dict[str, Any], key: jax.Array, size: int):
        del key
        return state["recent"][-size:], None
