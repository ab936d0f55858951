"""Continual DeepMind Control Suite on the host: K envs of one body, switching tasks.

The continual DMC of C-CHAIN (Tang et al., ICML 2025, §5 "Continual DMC"; public code
``crl_dmc/crl_run_ppo_dmc.py``) and Plasticine (Yuan et al. 2025; ``plasticine_envs/
dmc_wrappers.py``, ``ContinualDMC``): one body, a sequence of the suite's tasks on it, the
task changing every ``switch_every`` env steps — walker stand → walk → run, quadruped
walk → run → walk (C-CHAIN; Plasticine repeats them: walker twice, quadruped walk ↔ run
three times). Per env k (seed ``seeds[k]``) and env step:

* the action is clipped to the action spec's [-1, 1] (gymnasium's ``ClipAction``, as in the
  sources), then ``dm_control``'s own ``Environment.step`` of the current task's env: its
  physics, reward and observation, unchanged; the observation is the flattened dict in
  dm-control's order (``control.flatten_observation``; the sources' gymnasium
  ``FlattenObservation`` orders the keys alphabetically: the same numbers permuted, which
  an MLP's first layer absorbs);
* episodes are dm-control's 1,000 steps (time limit 20 s / 25 s at the task's control
  timestep), never terminated early; an ended episode auto-resets (``Environment.reset``:
  the task's random initial state drawn from the seed's own ``RandomState``);
* after every ``switch_every``-th step of the env the next task of the sequence starts (the
  sequence cycles if the run is longer; Plasticine's ``switch`` does the same): a fresh
  episode of the new task's env, and — since the sources build new gymnasium wrappers at
  a switch — fresh normalization statistics. The cut episode ends the rollout's
  trajectory there (``truncated``; the sources instead bootstrap that one transition from
  the old task's next observation) and is not recorded as an episode;
* with ``normalize_observations`` / ``normalize_rewards`` (the sources' gymnasium
  ``NormalizeObservation`` + clip ±10 and ``NormalizeReward`` + clip ±10, on by default
  there), the env returns what those wrappers return, computed as they compute it in the
  sources' gymnasium 0.29.1 (float64 running statistics per env, ``RunningMeanStd``:
  count 1e-4, the observation statistics updated by every observation including an ended
  episode's last and the next one's first; the discounted return reset only at a
  termination, never for DMC's truncations); the recorded episode return is the raw one
  (``RecordEpisodeStatistics`` sits inside the normalizing wrappers there).

``state_dict()`` holds each env's current physics (``mj_getState``, integration state), its
task position, its ``RandomState`` (MT19937), the episode counters and the normalization
statistics: a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from lopkit._config import field, validate
from lopkit._errors import ConfigError
from lopkit.mujoco_envs._friction import seed_sequence
from lopkit.mujoco_envs._state import (
    get_physics,
    physics_size,
    random_state_from_array,
    random_state_to_array,
    set_physics,
)

# the bodies and their tasks (dm-control's suite.ALL_TASKS for these domains) and the
# sequences of C-CHAIN's continual DMC (README "Continual DMC"; crl_run_ppo_dmc.py)
TASKS = {"walker": ("stand", "walk", "run"), "quadruped": ("walk", "run")}
SEQUENCES = {"walker": ("stand", "walk", "run"), "quadruped": ("walk", "run", "walk")}
OBSERVATIONS = {"walker": 24, "quadruped": 78}
ACTIONS = {"walker": 6, "quadruped": 12}
CLIP = 10.0  # the sources clip normalized observations and rewards to ±10
EPS = 1e-8  # gymnasium's NormalizeObservation / NormalizeReward epsilon
_RANDOM_STREAM = 0xD3C  # the seed's task RandomState: stream of (base_seed, seed)


@dataclasses.dataclass(frozen=True)
class DMCConfig:
    """A continual DMC env: the body, its task sequence and the switch period, and the
    sources' normalization wrappers."""

    domain: str = field("walker", "the body", choices=tuple(TASKS))
    sequence: tuple[str, ...] = field(
        (), "the tasks in order, cycled (empty: C-CHAIN's for the body)", may_be_empty=True
    )
    switch_every: int = field(1_000_000, "env steps per task", positive=True)
    normalize_observations: bool = field(True, "running mean/std of observations, clip ±10")
    normalize_rewards: bool = field(True, "rewards / running std of the return, clip ±10")
    gamma: float = field(0.99, "discount of the normalized return", unit_interval=True)

    @property
    def order(self) -> tuple[str, ...]:
        """The task sequence: ``sequence``, or C-CHAIN's for the body when it is empty."""
        return tuple(t.strip() for t in self.sequence) or SEQUENCES[self.domain]

    def check(self) -> None:
        valid = TASKS[self.domain]
        bad = [t for t in self.order if t not in valid]
        if bad:
            raise ConfigError(
                f"{self.domain} has no task {', '.join(map(repr, bad))} in dm-control; "
                f"its tasks: {', '.join(valid)}"
            )

    def __post_init__(self) -> None:
        validate(self)


class _RunningMeanStd:
    """gymnasium's ``RunningMeanStd`` (float64, count starts at 1e-4), one batch of one."""

    def __init__(self, shape: tuple[int, ...]):
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, x: np.ndarray) -> None:
        delta = x - self.mean
        total = self.count + 1.0
        m2 = self.var * self.count + np.square(delta) * self.count / total
        self.mean, self.var, self.count = self.mean + delta / total, m2 / total, total


def _flatten(observation: dict[str, Any]) -> np.ndarray:
    """dm-control's ``flatten_observation``: the dict's values raveled, in its order."""
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in observation.values()])


class DMCEnvs:
    """K continual DMC envs (env k is seed ``seeds[k]``) stepped in lockstep on the host;
    the :class:`lopkit.rl._host.HostEnvs` interface (``tasks``: switches so far;
    ``task_id``: the current task's index in ``TASKS[domain]``)."""

    def __init__(self, seeds, base_seed: int = 0, config: DMCConfig | None = None):
        # lopkit never renders: without this dm-control looks for an OpenGL backend (GLFW
        # first, which warns on a machine without a display). A user's choice is kept.
        os.environ.setdefault("MUJOCO_GL", "disable")
        from dm_control import suite

        self.config = c = config or DMCConfig()
        self.seeds = tuple(int(s) for s in seeds)
        if not self.seeds:
            raise ConfigError("DMCEnvs needs at least one seed")
        self.base_seed = int(base_seed)
        self.randoms = [
            np.random.RandomState(
                np.random.MT19937(seed_sequence(self.base_seed, s, _RANDOM_STREAM))
            )
            for s in self.seeds
        ]
        # one dm-control env per (seed, task of the body): a switch starts the next
        # task's env; all of a seed's envs draw their initial states from its RandomState
        self.envs = [
            {t: suite.load(c.domain, t, task_kwargs={"random": r}) for t in set(c.order)}
            for r in self.randoms
        ]
        k, d = len(self.seeds), OBSERVATIONS[c.domain]
        self.position = np.zeros(k, np.int64)  # switches so far
        self.total_steps = np.zeros(k, np.int64)
        self.episode_steps = np.zeros(k, np.int64)
        self.episode_return = np.zeros(k, np.float64)
        self.episodes = np.zeros(k, np.int64)
        self.obs = np.zeros((k, d), np.float32)  # as the agent sees it (normalized)
        self.obs_stats = [_RunningMeanStd((d,)) for _ in self.seeds]
        self.return_stats = [_RunningMeanStd(()) for _ in self.seeds]
        self.discounted = np.zeros(k, np.float64)
        self._started = False

    # -- tasks ----------------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return len(self.seeds)

    def task_name(self, k: int) -> str:
        return self.config.order[int(self.position[k]) % len(self.config.order)]

    def env(self, k: int):
        """Env k's current dm-control ``Environment``."""
        return self.envs[k][self.task_name(k)]

    @property
    def tasks(self) -> np.ndarray:
        """``[K]`` int: task switches so far."""
        return self.position.copy()

    @property
    def task_id(self) -> np.ndarray:
        """``[K]`` float: the current task's index in ``TASKS[domain]`` (walker: stand 0,
        walk 1, run 2; quadruped: walk 0, run 1)."""
        names = TASKS[self.config.domain]
        return np.array([names.index(self.task_name(k)) for k in range(self.num_envs)], float)

    # -- normalization (the sources' gymnasium wrappers) ----------------------------------
    def _present(self, k: int, raw: np.ndarray) -> np.ndarray:
        if not self.config.normalize_observations:
            return raw.astype(np.float32)
        stats = self.obs_stats[k]
        stats.update(raw)
        scaled = np.float32((raw - stats.mean) / np.sqrt(stats.var + EPS))
        return np.clip(scaled, -CLIP, CLIP)

    def _learned_reward(self, k: int, reward: float, terminated: bool) -> float:
        if not self.config.normalize_rewards:
            return reward
        self.discounted[k] = self.discounted[k] * self.config.gamma * (1 - terminated) + reward
        stats = self.return_stats[k]
        stats.update(self.discounted[k])
        return float(np.clip(reward / np.sqrt(stats.var + EPS), -CLIP, CLIP))

    # -- stepping -------------------------------------------------------------------------
    def _reset_one(self, k: int) -> None:
        raw = _flatten(self.env(k).reset().observation)
        self.obs[k] = self._present(k, raw)
        self.episode_steps[k] = 0
        self.episode_return[k] = 0.0

    def reset(self) -> np.ndarray:
        """Start every env's first episode of its first task."""
        for k in range(self.num_envs):
            self._reset_one(k)
        self._started = True
        return self.obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """One env step of every env: ``actions [K, A]`` (clipped to [-1, 1] here).

        Returns ``obs [K, D]`` (float32, normalized when configured), ``reward [K]`` (the
        one learned from: normalized when configured), ``terminated [K]`` (always False:
        these tasks never end early), ``truncated [K]`` (the time limit, or a task switch)
        and ``info`` with ``raw_reward [K]``, ``switched [K]``, ``episode_return [K]`` /
        ``episode_length [K]`` (of the episodes that reached their time limit at this step,
        NaN / 0 elsewhere).
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        k_envs, a = self.num_envs, ACTIONS[self.config.domain]
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (k_envs, a):
            raise ConfigError(f"actions must have shape [{k_envs}, {a}], got {list(actions.shape)}")
        actions = np.clip(actions, -1.0, 1.0)
        raw_reward = np.zeros(k_envs)
        reward = np.zeros(k_envs, np.float32)
        terminated = np.zeros(k_envs, bool)
        truncated = np.zeros(k_envs, bool)
        switched = np.zeros(k_envs, bool)
        info = {
            "episode_return": np.full(k_envs, np.nan),
            "episode_length": np.zeros(k_envs, np.int64),
        }
        for k in range(k_envs):
            step = self.env(k).step(actions[k])
            r = float(step.reward)
            raw_reward[k] = r
            self.obs[k] = self._present(k, _flatten(step.observation))
            ended = step.last()
            terminated[k] = ended and step.discount == 0.0  # never, for these tasks
            reward[k] = self._learned_reward(k, r, bool(terminated[k]))
            self.total_steps[k] += 1
            self.episode_steps[k] += 1
            self.episode_return[k] += r
            if ended:
                info["episode_return"][k] = self.episode_return[k]
                info["episode_length"][k] = self.episode_steps[k]
                self.episodes[k] += 1
            if self.total_steps[k] % self.config.switch_every == 0:
                switched[k] = True
                self.position[k] += 1
                d = OBSERVATIONS[self.config.domain]
                self.obs_stats[k], self.return_stats[k] = _RunningMeanStd((d,)), _RunningMeanStd(())
                self.discounted[k] = 0.0
                ended = True
            truncated[k] = ended and not terminated[k]
            if ended:
                self._reset_one(k)
        info["raw_reward"], info["switched"] = raw_reward, switched
        return self.obs.copy(), reward, terminated, truncated, info

    # -- checkpoint -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly, as named numpy arrays: each env's current
        physics (``physics [K, n]``, ``mj_getState`` integration state), task position,
        ``RandomState`` (``random [K, 627]``), counters, observation and the normalization
        statistics."""
        n = max(physics_size(env.physics.model.ptr) for e in self.envs for env in e.values())
        physics = np.zeros((self.num_envs, n))
        for k in range(self.num_envs):
            p = self.env(k).physics
            physics[k, : physics_size(p.model.ptr)] = get_physics(p.model.ptr, p.data.ptr)
        return {
            "physics": physics,
            "position": self.position.copy(),
            "random": np.stack([random_state_to_array(r) for r in self.randoms]),
            "total_steps": self.total_steps.copy(),
            "episode_steps": self.episode_steps.copy(),
            "episode_return": self.episode_return.copy(),
            "episodes": self.episodes.copy(),
            "obs": self.obs.copy(),
            "obs_mean": np.stack([s.mean for s in self.obs_stats]),
            "obs_var": np.stack([s.var for s in self.obs_stats]),
            "obs_count": np.array([s.count for s in self.obs_stats]),
            "return_mean": np.array([s.mean for s in self.return_stats], np.float64),
            "return_var": np.array([s.var for s in self.return_stats], np.float64),
            "return_count": np.array([s.count for s in self.return_stats]),
            "discounted": self.discounted.copy(),
            "seeds": np.array(self.seeds, np.int64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (of envs with the same seeds and config)."""
        if tuple(np.asarray(state["seeds"]).tolist()) != self.seeds:
            raise ConfigError(
                f"checkpoint is for seeds {list(state['seeds'])}, these envs are {list(self.seeds)}"
            )
        self.position[:] = state["position"]
        for name in ("total_steps", "episode_steps", "episode_return", "episodes", "obs"):
            getattr(self, name)[:] = state[name]
        self.discounted[:] = state["discounted"]
        for k in range(self.num_envs):
            env = self.env(k)
            p = env.physics
            set_physics(p.model.ptr, p.data.ptr, state["physics"][k][: physics_size(p.model.ptr)])
            # dm-control's episode clock (``Environment`` keeps it privately): the time limit
            # ends the episode at the same step as without the interruption
            env._step_count, env._reset_next_step = int(self.episode_steps[k]), False
            random_state_from_array(self.randoms[k], state["random"][k])
            o, r = self.obs_stats[k], self.return_stats[k]
            o.mean, o.var, o.count = (
                np.array(state["obs_mean"][k], np.float64),
                np.array(state["obs_var"][k], np.float64),
                float(state["obs_count"][k]),
            )
            r.mean, r.var, r.count = (
                np.float64(state["return_mean"][k]),
                np.float64(state["return_var"][k]),
                float(state["return_count"][k]),
            )
        self._started = True

    def close(self) -> None:
        for e in self.envs:
            for env in e.values():
                env.close()
