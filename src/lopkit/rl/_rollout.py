"""A control task as a stream whose data depend on the learner: one block is one rollout.

The engine asks a stream for the data of ``n`` steps; this stream *reads the learner*
(``reads_learner``): ``block(state, key, start, n, predict)`` plays ``n`` env steps with the
learner's current policy ``predict`` (``n`` = rollout_steps × envs_per_agent), computes
GAE(λ) advantages, and returns the rollout as ``epochs × minibatches`` shuffled minibatches
— the learner's updates for this block, each a PPO loss step (:func:`lopkit.rl.ppo_loss`).
Everything else is the engine's, as for a supervised stream: the learner's update, the
remedies, probes, bins, checkpoints.

One seed's stream state::

    {"env": gymnax env states [N], "obs": raw observations [N, D], "params": current env
     params, "task": int32 (changes so far), "since_change": int32 env steps, "value":
     float32 the changed constant's current value, "perm": int32 [D] observation order,
     "episode_return": [N], "episode_length": [N], "obs_stats", "reward_stats",
     "discounted": [N] (normalization: running statistics, never learned),
     "recent": [n, D] the last rollout's observations as the learner saw them (the probe
     batch), "change_key"}

Episode ends auto-reset (gymnax's ``step`` returns the reset observation and, in ``info``,
the final one). The environment changes at the first step, after ``change_every`` env steps
since the last change, at which an episode of the agent ends (the official rule; with
several envs per agent, the first end in any of them, and all its envs change then).

Recorded per block (summed over a bin's blocks by the engine, then divided): ``return`` and
``episode_length`` of the episodes that ended (NaN in a bin where none did), ``task``, and the
changed constant's value.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._seeds import any_seed
from lopkit.rl import _envs
from lopkit.rl._dqn import GamePlay  # the MinAtar play, shared with DQN
from lopkit.rl._ppo import PPOConfig, gae, log_prob, normalize, sample, shuffled_minibatches
from lopkit.streams._base import Block, Stream

CLIP = 10.0  # normalized observations and rewards are clipped to ±10 (gymnasium's wrappers)
STATS_EPS = 1e-8


def running_stats(shape: tuple[int, ...]) -> dict[str, jax.Array]:
    """Running mean and variance (gymnasium's ``RunningMeanStd``: count 1e-4, mean 0, var 1)."""
    return {
        "count": jnp.full((), 1e-4, jnp.float32),
        "mean": jnp.zeros(shape, jnp.float32),
        "var": jnp.ones(shape, jnp.float32),
    }


def update_stats(stats: dict[str, jax.Array], batch: jax.Array) -> dict[str, jax.Array]:
    """Merge a batch ``[B, …]`` into the running statistics (Chan et al.'s parallel rule)."""
    n = jnp.asarray(batch.shape[0], jnp.float32)
    mean, var = batch.mean(0), batch.var(0)
    delta = mean - stats["mean"]
    total = stats["count"] + n
    m2 = stats["var"] * stats["count"] + var * n + delta**2 * stats["count"] * n / total
    return {"count": total, "mean": stats["mean"] + delta * n / total, "var": m2 / total}


def ppo_batches(ppo: PPOConfig, traj: dict[str, jax.Array], last_value: jax.Array, key):
    """One rollout as PPO's updates: GAE(λ), advantage normalization, shuffled minibatches.

    traj: ``x`` (observations as the learner saw them), ``action``, ``log_prob``, ``value``,
    ``reward``, ``done``, leaves ``[T, N, …]`` (T steps of N envs); last_value ``[N]``: V of
    the observation after the last step. Returns (the rollout's observations ``[T·N, D]``
    (the probe batch), minibatch inputs ``[u, T·N / minibatches, D]``, the minibatches'
    ``action``, ``log_prob``, ``advantage``, ``return``), u = epochs × minibatches.
    """
    adv, returns = gae(
        traj["reward"], traj["value"], traj["done"], last_value, ppo.gamma, ppo.gae_lambda
    )

    def flat(a):
        return a.reshape((ppo.batch, *a.shape[2:]))

    adv = flat(adv)
    if ppo.normalize_advantages:
        adv = normalize(adv)
    data = {
        "x": flat(traj["x"]),
        "action": flat(traj["action"]),
        "log_prob": flat(traj["log_prob"]),
        "advantage": adv,
        "return": flat(returns),
    }
    batches = shuffled_minibatches(key, data, ppo.epochs, ppo.minibatches)
    x = batches.pop("x")
    return data["x"], x, batches


class PPOBlocks(Stream):
    """What the engine reads of a PPO stream with a ``ppo: PPOConfig`` field: a block is one
    rollout of every env of the agent, updated ``epochs × minibatches`` times."""

    @property
    def block_steps(self) -> int:
        """Env steps per block (one rollout of every env of the agent)."""
        return self.ppo.batch

    @property
    def updates_per_block(self) -> int:
        return self.ppo.updates

    @property
    def batch_size(self) -> int:
        return self.ppo.batch // self.ppo.minibatches

    @property
    def max_probe_size(self) -> int:
        return self.ppo.batch

    def _play(self, state: dict[str, Any], key: jax.Array, predict):
        """One rollout, scanned: ``ppo.rollout_steps`` calls of the stream's
        ``_env_step(state, key, predict) -> (state, transition, ended)`` with ``ended`` the
        (return, length, count) sums of the episodes that ended. Returns (state, those
        sums over the rollout, the trajectory, the key left for the minibatch shuffle)."""
        k_roll, k_perm = jax.random.split(key)

        def body(carry, k):
            s, sums = carry
            s, transition, ended = self._env_step(s, k, predict)
            return (s, jax.tree_util.tree_map(jnp.add, sums, ended)), transition

        zero = jnp.zeros((), jnp.float32)
        (state, sums), traj = jax.lax.scan(
            body, (state, (zero, zero, zero)), jax.random.split(k_roll, self.ppo.rollout_steps)
        )
        return state, sums, traj, k_perm


@dataclasses.dataclass(frozen=True, eq=False)
class RolloutStream(PPOBlocks):
    """A gymnax control task with a per-seed schedule of changes, played by the learner."""

    env_name: str
    change: str
    change_every: int
    change_range: tuple[float, float]  # (low, high) of a physics change's values
    change_scale: str  # "log" or "linear"
    ppo: PPOConfig

    reads_learner = True  # block() receives the learner's current prediction function
    probe_targets = False  # the probe batch has observations, no targets
    step_unit = "env-step"

    def __post_init__(self):
        env, params = _envs.ENVS[self.env_name].make()
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "default_params", _envs.traced_params(params))
        obs, _ = env.reset(jax.random.PRNGKey(0), params)
        object.__setattr__(self, "observations", int(obs.shape[-1]))
        discrete = _envs.ENVS[self.env_name].discrete
        object.__setattr__(self, "discrete", discrete)
        space = env.action_space(params)
        actions = int(space.n) if discrete else int(space.shape[0])
        object.__setattr__(self, "actions", actions)

    # ---- what the engine reads ------------------------------------------------------
    @property
    def physics(self) -> bool:
        return self.change not in _envs.GENERIC_CHANGES

    @property
    def records(self) -> tuple[str, ...]:
        return ("return", "episode_length", "task") + ((self.change,) if self.physics else ())

    # ---- the schedule ---------------------------------------------------------------
    def _value(self, state_key: jax.Array, task: jax.Array) -> jax.Array:
        low, high = self.change_range
        return _envs.draw_value(jax.random.fold_in(state_key, task), low, high, self.change_scale)

    def _apply_change(self, state: dict[str, Any], change: jax.Array) -> dict[str, Any]:
        """Task + 1 for the seeds where ``change``; the identity for the others."""

        def changed(s):
            task = s["task"] + 1
            new = {**s, "task": task, "since_change": jnp.zeros((), jnp.int32)}
            if self.change == "permutation":
                key = jax.random.fold_in(s["change_key"], task)
                new["perm"] = jax.random.permutation(key, self.observations).astype(jnp.int32)
            elif self.physics:
                value = self._value(s["change_key"], task)
                new["value"] = value
                new["params"] = _envs.with_value(
                    self.env_name, self.change, self.default_params, value
                )
            return jax.tree_util.tree_map(lambda a, b: jnp.where(change, a, b), new, s)

        return jax.lax.cond(any_seed(change), changed, lambda s: s, state)

    # ---- the stream protocol ----------------------------------------------------------
    def init(self, key: jax.Array) -> dict[str, Any]:
        n, d = self.ppo.envs_per_agent, self.observations
        reset_keys = jax.random.split(jax.random.fold_in(key, 0), n)
        obs, env_state = jax.vmap(self.env.reset, (0, None))(reset_keys, self.default_params)
        value = (
            jnp.asarray(_envs.default_value(self.env_name, self.change), jnp.float32)
            if self.physics
            else jnp.zeros((), jnp.float32)
        )
        return {
            "env": env_state,
            "obs": obs.astype(jnp.float32),
            "params": self.default_params,
            "task": jnp.zeros((), jnp.int32),
            "since_change": jnp.zeros((), jnp.int32),
            "value": value,
            "perm": jnp.arange(d, dtype=jnp.int32),
            "episode_return": jnp.zeros((n,), jnp.float32),
            "episode_length": jnp.zeros((n,), jnp.int32),
            "obs_stats": running_stats((d,)),
            "reward_stats": running_stats(()),
            "discounted": jnp.zeros((n,), jnp.float32),
            "recent": jnp.zeros((self.ppo.batch, d), jnp.float32),
            "change_key": jax.random.fold_in(key, 1),
        }

    def present(self, state: dict[str, Any], obs: jax.Array) -> jax.Array:
        """What the learner sees of raw observations ``[N, D]``: normalized, then permuted."""
        if self.ppo.normalize_observations:
            stats = state["obs_stats"]
            obs = jnp.clip((obs - stats["mean"]) / jnp.sqrt(stats["var"] + STATS_EPS), -CLIP, CLIP)
        return obs[:, state["perm"]]

    def _learning_reward(self, state: dict[str, Any], reward: jax.Array, done: jax.Array):
        """(reward as learned from, state): scaled by the running std of the discounted
        return when ``normalize_rewards`` (gymnasium's NormalizeReward, reset at episode ends)."""
        if not self.ppo.normalize_rewards:
            return reward, state
        discounted = state["discounted"] * self.ppo.gamma + reward
        stats = update_stats(state["reward_stats"], discounted)
        scaled = jnp.clip(reward / jnp.sqrt(stats["var"] + STATS_EPS), -CLIP, CLIP)
        new = {**state, "reward_stats": stats, "discounted": jnp.where(done, 0.0, discounted)}
        return scaled, new

    def _env_step(self, state: dict[str, Any], key: jax.Array, predict):
        """One step of every env of the agent: (state, transition, ended-episode sums)."""
        k_act, k_env = jax.random.split(key)
        if self.ppo.normalize_observations:
            state = {**state, "obs_stats": update_stats(state["obs_stats"], state["obs"])}
        x = self.present(state, state["obs"])
        out, _ = predict(x)
        action = sample(k_act, out, self.discrete)
        logp = log_prob(out, action, self.discrete)
        env_keys = jax.random.split(k_env, self.ppo.envs_per_agent)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, (0, 0, 0, None)
        )(env_keys, state["env"], action, state["params"])
        reward = reward.astype(jnp.float32)
        done = terminated | truncated
        learn_reward, state = self._learning_reward(state, reward, done)
        if self.ppo.bootstrap_truncation:
            final = self.present(state, info["final_observation"].astype(jnp.float32))
            cut = truncated & ~terminated
            learn_reward = learn_reward + self.ppo.gamma * jnp.where(
                cut, predict(final)[0]["value"], 0.0
            )
        ep_return = state["episode_return"] + reward
        ep_length = state["episode_length"] + 1
        ended = (
            jnp.sum(jnp.where(done, ep_return, 0.0)),
            jnp.sum(jnp.where(done, ep_length, 0)).astype(jnp.float32),
            jnp.sum(done).astype(jnp.float32),
        )
        state = {
            **state,
            "env": env_state,
            "obs": obs.astype(jnp.float32),
            "episode_return": jnp.where(done, 0.0, ep_return),
            "episode_length": jnp.where(done, 0, ep_length),
            "since_change": state["since_change"] + self.ppo.envs_per_agent,
        }
        if self.change != "none":
            due = (state["since_change"] >= self.change_every) & done.any()
            state = self._apply_change(state, due)
        transition = {
            "x": x,
            "action": action,
            "log_prob": logp,
            "value": out["value"],
            "reward": learn_reward,
            "done": done,
        }
        return state, transition, ended

    def block(self, state: dict[str, Any], key: jax.Array, start: jax.Array, n: int, predict):
        """One rollout of ``n`` env steps with ``predict`` (the learner's current network),
        as ``epochs × minibatches`` minibatches of PPO updates."""
        del start
        ppo = self.ppo
        if n != ppo.batch:
            raise ValueError(f"a block is one rollout of {ppo.batch} env steps, not {n}")
        state, (ret_sum, len_sum, count), traj, k_perm = self._play(state, key, predict)
        last_value = predict(self.present(state, state["obs"]))[0]["value"]
        recent, x, batches = ppo_batches(ppo, traj, last_value, k_perm)
        state = {**state, "recent": recent}
        sums = [ret_sum, len_sum, state["task"].astype(jnp.float32)]
        counts = [count, count, jnp.ones((), jnp.float32)]
        if self.physics:
            sums.append(state["value"])
            counts.append(jnp.ones((), jnp.float32))
        task = jnp.full((ppo.updates,), state["task"], jnp.int32)
        return state, Block(x, batches, task, (jnp.stack(sums), jnp.stack(counts)))

    def probe(self, state: dict[str, Any], key: jax.Array, size: int):
        """The last ``size`` observations of the latest rollout (as the learner saw them)."""
        del key
        return state["recent"][-size:], None


@dataclasses.dataclass(frozen=True, eq=False)
class GamesRolloutStream(GamePlay, PPOBlocks):
    """PPO's rollouts on :class:`lopkit.rl.Games` (MinAtar, a game sequence, or a discrete
    classic-control task) with the minatar benchmark's changes (:class:`lopkit.rl.GamePlay`,
    the same play as DQN's: a change every ``change_every`` env steps exactly, cutting the
    episode, which GAE then treats as ended). One env per agent; the learner sees the
    observation flattened (``observations`` entries; a conv agent reshapes it), and acts in
    the games' union action set. A block is one rollout of ``ppo.rollout_steps`` steps.

    State per seed: the play state (:class:`lopkit.rl.GamePlay`) and ``"recent"``: the last
    rollout's observations as the learner saw them ``[rollout_steps, observations]`` (the
    probe batch)."""

    games: Any  # lopkit.rl.Games
    change: str
    change_every: int
    per_seed_order: bool
    ppo: PPOConfig

    reads_learner = True
    probe_targets = False
    step_unit = "env-step"
    records = ("return", "episode_length", "task")
    discrete = True

    @property
    def observations(self) -> int:
        return self.obs_size

    @property
    def actions(self) -> int:
        return self.games.actions

    def init(self, key: jax.Array) -> dict[str, Any]:
        recent = jnp.zeros((self.ppo.batch, self.obs_size), jnp.float32)
        return {**self.play_init(key), "recent": recent}

    def _env_step(self, state: dict[str, Any], key: jax.Array, predict):
        k_act, k_env, k_change = jax.random.split(key, 3)
        x = self.present(state, state["obs"]).reshape(1, -1)
        out, _ = predict(x)
        action = sample(k_act, out, True)
        logp = log_prob(out, action, True)
        state, played = self.play_step(state, k_env, k_change, action[0])
        transition = {
            "x": x,
            "action": action,
            "log_prob": logp,
            "value": out["value"],
            "reward": played["reward"][None],
            "done": played["cut"][None],
        }
        return state, transition, played["ended"]

    def block(self, state: dict[str, Any], key: jax.Array, start: jax.Array, n: int, predict):
        """One rollout of ``n`` env steps with ``predict``, as ``epochs × minibatches``
        minibatches of PPO updates."""
        del start
        ppo = self.ppo
        if n != ppo.batch:
            raise ValueError(f"a block is one rollout of {ppo.batch} env steps, not {n}")
        state, (ret_sum, len_sum, count), traj, k_perm = self._play(state, key, predict)
        x_last = self.present(state, state["obs"]).reshape(1, -1)
        last_value = predict(x_last)[0]["value"]
        recent, x, batches = ppo_batches(ppo, traj, last_value, k_perm)
        state = {**state, "recent": recent}
        sums = jnp.stack([ret_sum, len_sum, state["task"].astype(jnp.float32)])
        counts = jnp.stack([count, count, jnp.ones((), jnp.float32)])
        task = jnp.full((ppo.updates,), state["task"], jnp.int32)
        return state, Block(x, batches, task, (sums, counts))

    def probe(self, state: dict[str, Any], key: jax.Array, size: int):
        """The last ``size`` observations of the latest rollout (as the learner saw them)."""
        del key
        return state["recent"][-size:], None
