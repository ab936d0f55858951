"""Slippery Ant on the host: K independent MuJoCo Ant envs stepped in lockstep.

Gymnasium's Ant (``gymnasium/envs/mujoco/ant_v4.py``, ``ant_v5.py``) re-implemented on the
``mujoco`` bindings so that K envs (one per seed) step in one call, in threads (``mj_step``
releases the GIL), with a friction schedule per env (:mod:`._friction`) and a checkpoint of
everything needed to continue exactly (docs/design.md §8, §13). Per env and env step:

* ``data.ctrl = action`` (the raw action: MuJoCo clamps it to the ctrlrange [-1, 1]), then
  ``frame_skip`` = 5 ``mj_step`` of 0.01 s (RK4), so ``dt`` = 0.05 s;
* x-velocity = Δ(torso ``xpos``)/dt, read as gymnasium reads it (``xpos`` after ``mj_step``);
* reward = x-velocity + healthy reward − ``ctrl_cost_weight`` ‖action‖² (raw action)
  [− contact cost, v5]; v4's healthy reward is 1 on every step (also the terminal one),
  v5's only while healthy;
* terminated = not healthy (qpos, qvel finite and torso z in [0.2, 1]); truncated =
  the episode reached ``max_episode_steps`` = 1000 (gymnasium's ``TimeLimit``);
* observation = qpos[2:] (13), qvel (14): 27 numbers [v5: + clipped ``cfrc_ext[1:]``, 78];
* auto-reset at an episode end: ``mj_resetData``, qpos0 + U(±0.1), qvel N(0, 0.1²) from the
  env's own numpy stream (``(base_seed, seed)``), ``mj_forward``; a friction change due by
  the schedule takes effect here, for the next episode.

Gymnasium's Ant-v4 equals the official SlipperyAnt-v3 without its contact forces (zero
under MuJoCo ≥ 2: ``cfrc_ext`` is only filled by ``mj_rnePostConstraint``): the same
dynamics and rewards, 27 observations instead of the official 111 (the 84 zeros last). The
official networks' first layer has 111 inputs; the ``ant`` benchmark's agent keeps those
rows (``network_inputs``, :mod:`lopkit.benchmarks._ant`). The friction is
the sliding friction of every geom, ``model.geom_friction[:, 0]`` (the official code
rewrites the default ``<geom>``'s friction, which floor and all 13 body geoms inherit).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import numpy as np

from lopkit._config import field, validate
from lopkit._errors import ConfigError
from lopkit.mujoco_envs._friction import (
    FrictionConfig,
    ScheduleState,
    advance,
    check_friction,
    friction_sequence,
    seed_sequence,
)
from lopkit.mujoco_envs._state import (
    get_physics,
    pcg64_from_array,
    pcg64_to_array,
    physics_size,
    set_physics,
)

VERSIONS = ("v4", "v5")
_RESET_STREAM = 0xA27  # the env's reset-noise stream of (base_seed, seed)


def ant_xml_path() -> str:
    """Gymnasium's ``ant.xml`` (the same model for v4 and v5)."""
    import gymnasium

    return os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", "ant.xml")


@dataclasses.dataclass(frozen=True)
class AntConfig:
    """Gymnasium's Ant (defaults of ``AntEnv.__init__`` in ``ant_v4.py`` / ``ant_v5.py``).

    ``version`` v4 (default; the official SlipperyAnt-v3's dynamics and rewards, no contact
    cost; 27-dim observations: the official 111 without the 84 contact forces, always 0) or
    v5 (healthy reward only while healthy, contact cost and contact forces in the
    observation, 105-dim). ``threads``: threads stepping the K envs, the calling one
    included (0: one per CPU, at most K; 1: no threads).
    """

    version: str = field("v4", "gymnasium Ant version: v4 or v5", choices=VERSIONS)
    frame_skip: int = field(5, "mj_step calls per env step (dt = 0.05 s)", positive=True)
    ctrl_cost_weight: float = field(0.5, "weight of ||action||^2 in the reward", nonnegative=True)
    contact_cost_weight: float = field(5e-4, "weight of the contact cost (v5)", nonnegative=True)
    healthy_reward: float = field(1.0, "reward per healthy step", nonnegative=True)
    healthy_z_min: float = field(0.2, "lowest healthy torso height")
    healthy_z_max: float = field(1.0, "highest healthy torso height")
    reset_noise_scale: float = field(
        0.1, "qpos U(±scale), qvel scale·N(0,1) at reset", nonnegative=True
    )
    max_episode_steps: int = field(1000, "episode length limit (truncation)", positive=True)
    threads: int = field(0, "threads stepping the envs (0: one per CPU)", nonnegative=True)

    def check(self) -> None:
        if not self.healthy_z_min < self.healthy_z_max:
            raise ConfigError("AntConfig.healthy_z_min must be < healthy_z_max")

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:  # before validate, to name the versions
            raise ConfigError(
                f"unknown Ant version {self.version!r}; valid choices: {', '.join(VERSIONS)}"
            )
        validate(self)

    @property
    def obs_dim(self) -> int:
        return 27 if self.version == "v4" else 27 + 78


class AntEnvs:
    """K independent Ant envs (env k is seed ``seeds[k]``), stepped in lockstep.

    ``reset() -> obs [K, obs_dim]``; ``step(actions [K, 8]) -> (obs, reward [K],
    terminated [K], truncated [K], info)`` with auto-reset: ``obs`` of an env whose episode
    ended is the first observation of its next episode, ``info['final_obs']`` the last one
    of the ended episode. ``state_dict()`` / ``load_state_dict()`` hold everything needed to
    continue exactly (simulator state, frictions, schedule, RNG, counters).
    """

    def __init__(
        self,
        seeds: list[int] | tuple[int, ...],
        base_seed: int = 0,
        config: AntConfig | None = None,
        friction: FrictionConfig | None = None,
    ):
        self.config = config or AntConfig()
        self.friction_config = friction or FrictionConfig()
        self.seeds = tuple(int(s) for s in seeds)
        if not self.seeds:
            raise ConfigError("AntEnvs needs at least one seed")
        self.base_seed = int(base_seed)
        base_model = mujoco.MjModel.from_xml_path(ant_xml_path())
        self.models = [copy.deepcopy(base_model) for _ in self.seeds]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self._qpos0 = self.datas[0].qpos.copy()  # gymnasium's init_qpos
        self._qvel0 = self.datas[0].qvel.copy()
        self._torso = base_model.body("torso").id
        self._dt = base_model.opt.timestep * self.config.frame_skip
        self.rngs = [
            np.random.Generator(np.random.PCG64(seed_sequence(self.base_seed, s, _RESET_STREAM)))
            for s in self.seeds
        ]
        k = len(self.seeds)
        self.schedule = [ScheduleState() for _ in self.seeds]
        self.friction = np.array([self._friction_value(i, 0) for i in range(k)])
        self.total_steps = np.zeros(k, np.int64)  # env steps taken by each env
        self.episode_steps = np.zeros(k, np.int64)
        self.episode_return = np.zeros(k, np.float64)
        self.episodes = np.zeros(k, np.int64)  # episodes ended
        self.obs = np.zeros((k, self.config.obs_dim))
        self._torso_xy = np.zeros((k, 2))
        # what a step reads of each env's simulator, filled by the thread that stepped it
        m = self.models[0]
        self._qpos, self._qvel = np.zeros((k, m.nq)), np.zeros((k, m.nv))
        self._xy = np.zeros((k, 2))
        self._forces = np.zeros((k, m.nbody, 6)) if self.config.version == "v5" else None
        # the calling thread steps envs too, beside threads - 1 workers
        self._threads = min(self.config.threads or os.cpu_count() or 1, k)
        self._pool = ThreadPoolExecutor(self._threads - 1) if self._threads > 1 else None
        self._started = False

    # -- friction -------------------------------------------------------------------------
    def _friction_value(self, k: int, index: int) -> float:
        return float(
            friction_sequence(self.friction_config, self.base_seed, self.seeds[k], index + 1)[-1]
        )

    def set_friction(self, k: int, value: float) -> None:
        """Set env k's sliding friction on every geom (takes effect at the next mj_step)."""
        check_friction(value)
        self.friction[k] = value
        self.models[k].geom_friction[:, 0] = value

    @property
    def tasks(self) -> np.ndarray:
        """``[K]`` int: friction changes so far of each env (its schedule index)."""
        return np.array([s.index for s in self.schedule], np.int64)

    # -- stepping -------------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return len(self.seeds)

    def _observe(self, k: int) -> np.ndarray:
        d = self.datas[k]
        forces = np.clip(d.cfrc_ext[None], -1.0, 1.0) if self.config.version == "v5" else None
        return self._observations(d.qpos[None], d.qvel[None], forces)[0]

    def _observations(self, qpos, qvel, forces) -> np.ndarray:
        """``[K, obs_dim]`` from ``qpos [K, nq]``, ``qvel [K, nv]`` and (v5) the clipped
        ``cfrc_ext [K, nbody, 6]``: qpos[2:], qvel [, cfrc_ext[1:] flattened]."""
        parts = [qpos[:, 2:], qvel]
        if self.config.version == "v5":
            parts.append(forces[:, 1:].reshape(len(qpos), -1))
        return np.concatenate(parts, axis=1)

    def _reset_one(self, k: int) -> None:
        m, d, rng, s = self.models[k], self.datas[k], self.rngs[k], self.config.reset_noise_scale
        mujoco.mj_resetData(m, d)
        d.qpos[:] = self._qpos0 + rng.uniform(-s, s, size=m.nq)
        d.qvel[:] = self._qvel0 + s * rng.standard_normal(m.nv)
        mujoco.mj_forward(m, d)
        self.obs[k] = self._observe(k)
        self._torso_xy[k] = d.xpos[self._torso, :2]
        self.episode_steps[k] = 0
        self.episode_return[k] = 0.0

    def reset(self) -> np.ndarray:
        """Start every env's first episode (friction = first value of its sequence)."""
        for k in range(self.num_envs):
            self.set_friction(k, self.friction[k])
            self._reset_one(k)
        self._started = True
        return self.obs.copy()

    def _physics(self, envs: Iterator[int], actions: np.ndarray) -> None:
        """``frame_skip`` mj_steps of each env that this thread takes from ``envs``, an
        iterator shared by all threads of a step (``next`` on it is atomic under the GIL), so
        a thread that finishes early takes the next env: envs' costs differ with their
        contacts, and fixed shares left a thread idle ~20% of a step. Which thread steps an
        env changes nothing in it. ``mj_step`` releases the GIL. The thread copies what the
        step reads of the env (qpos, qvel, torso xy, v5's contact forces) into the
        ``[K, …]`` arrays while the other threads step theirs (gathering them afterwards
        was serial time in every step); the rest is done vectorized in :meth:`step`."""
        frame_skip, v5, torso = self.config.frame_skip, self.config.version == "v5", self._torso
        for k in envs:
            m, d = self.models[k], self.datas[k]
            d.ctrl[:] = actions[k]
            mujoco.mj_step(m, d, nstep=frame_skip)
            self._qpos[k], self._qvel[k], self._xy[k] = d.qpos, d.qvel, d.xpos[torso, :2]
            if v5:
                mujoco.mj_rnePostConstraint(m, d)  # fills cfrc_ext, as gymnasium does
                self._forces[k] = d.cfrc_ext

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """One env step of every env: ``actions [K, 8]`` (not clipped here: MuJoCo clamps).

        Returns ``obs [K, obs_dim]``, ``reward [K]``, ``terminated [K]``, ``truncated [K]``
        and ``info`` with ``final_obs [K, obs_dim]``, ``x_velocity [K]``, ``friction [K]``
        (in effect during this step), ``episode_return [K]`` / ``episode_length [K]`` (of
        the episodes that ended at this step, NaN / 0 elsewhere).
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        k, nu, cfg = self.num_envs, self.models[0].nu, self.config
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (k, nu):
            raise ConfigError(f"actions must have shape [{k}, {nu}], got {list(actions.shape)}")
        queue = iter(range(k))
        workers = [
            self._pool.submit(self._physics, queue, actions) for _ in range(self._threads - 1)
        ]  # no pool: one thread, no workers
        self._physics(queue, actions)
        for f in workers:
            f.result()
        qpos, qvel, xy = self._qpos, self._qvel, self._xy
        x_velocity = (xy[:, 0] - self._torso_xy[:, 0]) / self._dt
        self._torso_xy[:] = xy
        z = qpos[:, 2]
        healthy = (
            np.isfinite(qpos).all(axis=1)
            & np.isfinite(qvel).all(axis=1)
            & (cfg.healthy_z_min <= z)
            & (z <= cfg.healthy_z_max)
        )
        alive = np.ones(k) if cfg.version == "v4" else healthy.astype(np.float64)
        ctrl_cost = cfg.ctrl_cost_weight * np.sum(np.square(actions), axis=1)
        reward = x_velocity + alive * cfg.healthy_reward - ctrl_cost
        forces = None
        if cfg.version == "v5":
            forces = np.clip(self._forces, -1.0, 1.0)
            reward = reward - cfg.contact_cost_weight * np.sum(np.square(forces), axis=(1, 2))
        obs = self._observations(qpos, qvel, forces)
        steps = self.total_steps.copy()  # the index of this step, per env
        self.total_steps += 1
        self.episode_steps += 1
        self.episode_return += reward
        terminated = ~healthy
        truncated = self.episode_steps >= cfg.max_episode_steps
        info = {
            "final_obs": obs,
            "x_velocity": x_velocity,
            "friction": self.friction.copy(),
            "episode_return": np.full(k, np.nan),
            "episode_length": np.zeros(k, np.int64),
        }
        self.obs[:] = obs
        for i in np.flatnonzero(terminated | truncated):
            info["episode_return"][i] = self.episode_return[i]
            info["episode_length"][i] = self.episode_steps[i]
            self.episodes[i] += 1
            new = advance(self.friction_config, self.schedule[i], int(steps[i]), True)
            if new.index != self.schedule[i].index:
                self.set_friction(i, self._friction_value(i, new.index))
            self.schedule[i] = new
            self._reset_one(i)
        return self.obs.copy(), reward, terminated, truncated, info

    # -- checkpoint -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly, as named numpy arrays (``np.savez``-able).

        ``physics [K, n]``: ``mj_getState`` with ``mjSTATE_INTEGRATION`` (time, qpos, qvel,
        act, the constraint solver's warm start, ctrl, applied forces, ...); ``friction``,
        schedule ``index`` / ``last_change``, ``rng [K, 6]`` (PCG64 state), the counters, the
        current observation and the torso position the next x-velocity is measured from.
        """
        physics = np.zeros((self.num_envs, physics_size(self.models[0])))
        for k, (m, d) in enumerate(zip(self.models, self.datas, strict=True)):
            get_physics(m, d, physics[k])
        return {
            "physics": physics,
            "friction": self.friction.copy(),
            "schedule_index": np.array([s.index for s in self.schedule], np.int64),
            "schedule_last_change": np.array([s.last_change for s in self.schedule], np.int64),
            "rng": np.stack([pcg64_to_array(g.bit_generator.state) for g in self.rngs]),
            "total_steps": self.total_steps.copy(),
            "episode_steps": self.episode_steps.copy(),
            "episode_return": self.episode_return.copy(),
            "episodes": self.episodes.copy(),
            "obs": self.obs.copy(),
            "torso_xy": self._torso_xy.copy(),
            "seeds": np.array(self.seeds, np.int64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (of envs with the same seeds and configs)."""
        if tuple(np.asarray(state["seeds"]).tolist()) != self.seeds:
            raise ConfigError(
                f"checkpoint is for seeds {list(state['seeds'])}, these envs are {list(self.seeds)}"
            )
        for k, (m, d) in enumerate(zip(self.models, self.datas, strict=True)):
            self.set_friction(k, float(state["friction"][k]))
            set_physics(m, d, state["physics"][k])
            self.rngs[k].bit_generator.state = pcg64_from_array(state["rng"][k])
        self.schedule = [
            ScheduleState(int(i), int(c))
            for i, c in zip(state["schedule_index"], state["schedule_last_change"], strict=True)
        ]
        for name in ("total_steps", "episode_steps", "episode_return", "episodes", "obs"):
            getattr(self, name)[:] = state[name]
        self._torso_xy[:] = state["torso_xy"]
        self._started = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
