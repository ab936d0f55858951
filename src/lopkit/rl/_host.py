"""A control task whose simulator runs on the host: PPO's rollout outside the compiled program.

MuJoCo's C simulator cannot run inside ``jit``; this
stream is *hosted* (``hosted = True``, :mod:`lopkit.engine._program`): the engine asks it
to ``play`` each block on the host — all seeds' envs in lockstep, stepped in threads, with
one jitted call of :meth:`HostRolloutStream.act` (the policy net only) vmapped over every
seed per env step — and then runs :meth:`HostRolloutStream.block` (the value net on the
whole rollout in one batch, GAE(λ), minibatches, :func:`lopkit.rl._rollout.
ppo_batches`, exactly as the compiled control stream) and the learner's updates as one
compiled vmapped call. Everything else (remedies, probes, bins, checkpoints) is the engine's.

The envs are a :class:`HostEnvFamily` (its sizes, the name of the constant it changes, and
``make(base_seed, seeds)`` → K envs with the :class:`HostEnvs` interface): MuJoCo Ant with
a friction schedule (:mod:`lopkit.mujoco_envs`, the ``ant`` benchmark) and DeepMind Control
Suite task sequences (:mod:`lopkit.dmc_envs`, the ``dmc`` benchmark) are two families; this
stream knows neither. The host part of the run state is ``envs.state_dict()``: the
simulators' complete state (``mj_getState`` with the integration state), task schedules,
random generators and episode counters, numpy arrays with a leading seed axis. It is part
of the one state pytree, so a checkpoint holds it and ``--resume`` continues exactly.

Per seed, the device stream state::

    {"task": int32 (friction changes so far), "value": float32 (the changed constant, e.g.
     the friction, at the end of the last block), "recent": [n, D] the last rollout's
     observations (the probe batch)}

Acting keys: env step ``t`` of block ``b`` uses ``fold_in(block key, t)`` (the engine draws
every step's noise of a block in one call, :meth:`HostRolloutStream.act_noise`); the block's
minibatch shuffle uses ``fold_in(block key, n)`` (``n`` = steps per block), so no key is
used twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from lopkit.rl._ppo import PPOConfig, gaussian_action, log_prob
from lopkit.rl._rollout import PPOBlocks, ppo_batches
from lopkit.streams._base import Block


class HostEnvs(Protocol):
    """K independent envs (env k is seed ``seeds[k]``) stepped in lockstep on the host, with
    auto-reset and their own task schedules. What :class:`HostRolloutStream` reads:

    * ``reset() -> obs [K, D]``: every env's first episode;
    * ``step(actions [K, A]) -> (obs [K, D], reward [K], terminated [K], truncated [K],
      info)``: one env step of every env; ``reward`` is what the agent learns from;
      ``obs`` of an env whose episode ended is the first of its next episode;
      ``info["episode_return"]`` ``[K]`` / ``info["episode_length"]`` ``[K]``: the return
      and length of the episodes that ended at this step (NaN / 0 elsewhere: also where a
      trajectory was cut without an episode of the task ending, e.g. at a task switch);
    * ``tasks``: ``[K]`` int, task changes so far of each env; the family's changed
      constant ``getattr(envs, family.change)``: ``[K]`` float, its current value;
    * ``state_dict()`` / ``load_state_dict(state)``: everything needed to continue exactly
      (numpy arrays with a leading seed axis, including ``"seeds"`` and ``"obs"``);
    * ``close()``.
    """

    seeds: tuple[int, ...]

    def reset(self) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[Any, ...]: ...

    @property
    def tasks(self) -> np.ndarray: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class HostEnvFamily:
    """A kind of host-stepped env: observation and action sizes, the name of the constant
    whose per-seed value is recorded per bin (an attribute of the envs, ``[K]``), and
    ``make(base_seed, seeds)`` → :class:`HostEnvs`, seed ``seeds[k]``'s env its k-th."""

    name: str
    observations: int
    actions: int
    change: str
    make: Callable[[int, list[int]], HostEnvs]


@dataclasses.dataclass(frozen=True, eq=False)
class HostRolloutStream(PPOBlocks):
    """K host envs of one :class:`HostEnvFamily` (one per seed) played in lockstep by the
    learners' Gaussian policies (one env per agent)."""

    family: HostEnvFamily
    ppo: PPOConfig

    hosted = True
    reads_learner = True
    probe_targets = False
    step_unit = "env-step"
    discrete = False

    def __post_init__(self):
        object.__setattr__(self, "_envs", {})  # (base_seed, seeds) -> [envs, last host state]

    # ---- what the engine reads ------------------------------------------------------
    @property
    def observations(self) -> int:
        return self.family.observations

    @property
    def actions(self) -> int:
        return self.family.actions

    @property
    def change(self) -> str:
        return self.family.change

    @property
    def records(self) -> tuple[str, ...]:
        return ("return", "episode_length", "task", self.change)

    # ---- traced, per seed -----------------------------------------------------------
    def init(self, key: jax.Array) -> dict[str, Any]:
        del key
        return {
            "task": jnp.zeros((), jnp.int32),
            "value": jnp.zeros((), jnp.float32),
            "recent": jnp.zeros((self.ppo.batch, self.observations), jnp.float32),
        }

    def act_noise(self, key: jax.Array) -> jax.Array:
        """The randomness of one seed's action at one step: ξ ~ N(0, 1) ``[A]`` (the draw
        of :func:`lopkit.rl.sample`, the same bits from the same key)."""
        return jax.random.normal(key, (self.actions,), jnp.float32)

    def act(self, state: dict[str, Any], predict, obs: jax.Array, noise: jax.Array):
        """One seed's action at one step: obs ``[D]`` → action μ + σ·ξ ``[A]`` (ξ = ``noise``
        from :meth:`act_noise`; unclipped: MuJoCo clamps) and its log-probability. The value
        net is not evaluated here (the compiled call drops it): :meth:`block` evaluates it on
        the whole rollout at once — the same parameters, so the same estimates, in one
        batched product instead of one per step."""
        del state
        out, _ = predict(obs[None])
        action = gaussian_action(out, noise)
        return {"action": action[0], "log_prob": log_prob(out, action, False)[0]}

    def block(self, state, key, start, n, predict, feed):
        """The played rollout ``feed`` (one seed) as ``epochs × minibatches`` PPO updates."""
        del start
        ppo = self.ppo
        traj = {name: feed[name][:, None] for name in ("x", "action", "log_prob", "reward", "done")}
        values = predict(jnp.concatenate([feed["x"], feed["last_obs"][None]]))[0]["value"]
        traj["value"], last_value = values[:-1, None], values[-1:]
        recent, x, batches = ppo_batches(ppo, traj, last_value, jax.random.fold_in(key, n))
        task, value = feed["task"], feed["changed"]
        state = {**state, "recent": recent, "task": task, "value": value}
        one = jnp.ones((), jnp.float32)
        sums = jnp.stack([feed["return_sum"], feed["length_sum"], task.astype(jnp.float32), value])
        counts = jnp.stack([feed["episodes"], feed["episodes"], one, one])
        tasks = jnp.full((ppo.updates,), task, jnp.int32)
        return state, Block(x, batches, tasks, (sums, counts))

    def probe(self, state: dict[str, Any], key: jax.Array, size: int):
        """The last ``size`` observations of the latest rollout."""
        del key
        return state["recent"][-size:], None

    # ---- on the host ----------------------------------------------------------------
    def host_init(self, base_seed: int, seeds: np.ndarray) -> dict[str, np.ndarray]:
        """Start seed ``seeds[k]``'s env (its first episode); returns the host state."""
        if self.ppo.envs_per_agent != 1:
            raise ValueError("a host-stepped agent has one env (envs_per_agent = 1)")
        ids = [int(s) for s in np.asarray(seeds)]
        key = (int(base_seed), tuple(ids))
        if key in self._envs:  # fresh envs: a used one's reset-noise streams have moved on
            self._envs.pop(key)[0].close()
        envs = self.family.make(int(base_seed), ids)
        self._envs[key] = [envs, None]
        envs.reset()
        host = envs.state_dict()
        self._envs[key][1] = host
        return host

    def _current(self, host: dict[str, np.ndarray]):
        """The envs of ``host``'s seeds, at the state ``host`` (restored unless they are
        already there: the state is the last one :meth:`play` returned)."""
        ids = tuple(int(s) for s in host["seeds"])
        entry = next((v for (b, s), v in self._envs.items() if s == ids), None)
        if entry is None:
            raise ValueError("play() before host_init() for these seeds")
        if entry[1] is not host:
            entry[0].load_state_dict(host)
        return entry

    def play(self, host: dict[str, np.ndarray], act, n: int):
        """``n`` env steps of every seed's env with ``act(obs [K, D] float32, t)`` (the
        engine's vmapped :meth:`act`); returns (host state, feed: the block's data, leaves
        with a leading seed axis)."""
        entry = self._current(host)
        envs = entry[0]
        k, d, a = len(host["seeds"]), self.observations, self.actions
        x = np.zeros((n, k, d), np.float32)
        actions = np.zeros((n, k, a), np.float32)
        logp, reward = np.zeros((n, k), np.float32), np.zeros((n, k), np.float32)
        done = np.zeros((n, k), bool)
        ret_sum, len_sum, episodes = (np.zeros(k, np.float64) for _ in range(3))
        obs = np.asarray(host["obs"], np.float32)
        for t in range(n):
            out = jax.device_get(act(obs, t))
            x[t], actions[t] = obs, out["action"]
            logp[t] = out["log_prob"]
            next_obs, r, terminated, truncated, info = envs.step(out["action"])
            ended = terminated | truncated  # truncation as terminal (the official setting)
            reward[t], done[t] = r, ended
            # an episode is recorded where the env reports one (a length): a trajectory cut
            # by a task switch ends here too, but is no episode of the task
            recorded = info["episode_length"] > 0
            ret_sum += np.where(recorded, np.nan_to_num(info["episode_return"]), 0.0)
            len_sum += info["episode_length"]
            episodes += recorded
            obs = next_obs.astype(np.float32)
        host = envs.state_dict()
        entry[1] = host
        seed_first = lambda v: np.ascontiguousarray(np.swapaxes(v, 0, 1))  # noqa: E731
        feed = {
            "x": seed_first(x),
            "action": seed_first(actions),
            "log_prob": seed_first(logp),
            "reward": seed_first(reward),
            "done": seed_first(done),
            "last_obs": obs,
            "return_sum": ret_sum.astype(np.float32),
            "length_sum": len_sum.astype(np.float32),
            "episodes": episodes.astype(np.float32),
            "task": np.asarray(envs.tasks, np.int32),
            "changed": np.asarray(getattr(envs, self.change), np.float32),
        }
        return host, feed
