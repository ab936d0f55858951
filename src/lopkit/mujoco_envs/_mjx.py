"""Slippery Ant in MuJoCo XLA: the host env's Ant as pure, vmappable JAX functions.

The same ``ant.xml`` as :class:`~lopkit.mujoco_envs.AntEnvs` in ``mujoco.mjx``
(docs/design.md §13), following gymnax's protocol: the friction is an explicit per-seed
value passed at every call and written into the model inside the traced function
(``model.replace(geom_friction=…)``), so vmapping over seeds batches it and a friction
change never recompiles. One env step is ``frame_skip`` ``mjx.step`` calls; observation,
reward and termination follow gymnasium's Ant-v4 exactly as the host env does (x-velocity
from the torso ``xpos`` read after the step, healthy reward 1 on every step, ``0.5
‖action‖²`` on the raw action). MJX runs in the float precision JAX is set to (float32 by
default) and its constraint solver and collision routines are not MuJoCo C's, so
trajectories agree with the host's to a tolerance, not exactly (``tests/test_ant_env.py``
states it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx

from lopkit._errors import ConfigError
from lopkit.mujoco_envs._ant import AntConfig, ant_xml_path


class MjxAntState(NamedTuple):
    """One env's state: the MJX data, its torso x-y position and its episode step."""

    data: mjx.Data
    torso_xy: jax.Array  # [2]
    episode_steps: jax.Array  # [] int32


class MjxAnt:
    """Ant-v4 in MJX for one seed; ``jax.vmap`` it over seeds (state, action, friction).

    ``init(qpos [15], qvel [14], friction []) -> (obs [27], state)`` starts an episode at a
    given state (reset noise is the caller's, so host and MJX can start alike);
    ``reset(key, friction)`` draws gymnasium's reset noise with ``key``;
    ``step(state, action [8], friction []) -> (obs, state, reward, terminated, truncated)``;
    ``step_autoreset(key, state, action, friction)``: the same with gymnax's auto-reset (an
    ended episode's env is reset with ``key`` at ``friction``; also returns the final obs).
    """

    def __init__(self, config: AntConfig | None = None, mj_model: mujoco.MjModel | None = None):
        self.config = config or AntConfig()
        if self.config.version != "v4":
            raise ConfigError("MJX Ant implements version v4 only (observations and rewards)")
        self.mj_model = mj_model or mujoco.MjModel.from_xml_path(ant_xml_path())
        self.model = mjx.put_model(self.mj_model)
        self._torso = self.mj_model.body("torso").id
        self._dt = self.mj_model.opt.timestep * self.config.frame_skip
        self._qpos0 = jnp.asarray(self.mj_model.qpos0)

    def with_friction(self, friction: jax.Array) -> mjx.Model:
        """The model with sliding friction ``friction`` on every geom (traced, no recompile)."""
        return self.model.replace(geom_friction=self.model.geom_friction.at[:, 0].set(friction))

    def _obs(self, data: mjx.Data) -> jax.Array:
        return jnp.concatenate([data.qpos[2:], data.qvel])

    def init(self, qpos: jax.Array, qvel: jax.Array, friction: jax.Array):
        model = self.with_friction(friction)
        qpos, qvel = jnp.asarray(qpos), jnp.asarray(qvel)
        data = mjx.forward(model, mjx.make_data(model).replace(qpos=qpos, qvel=qvel))
        state = MjxAntState(data, data.xpos[self._torso, :2], jnp.zeros((), jnp.int32))
        # gymnasium observes the reset qpos as drawn (its quaternion not yet normalized)
        return jnp.concatenate([qpos[2:], qvel]), state

    def reset(self, key: jax.Array, friction: jax.Array):
        s = self.config.reset_noise_scale
        k1, k2 = jax.random.split(key)
        qpos = self._qpos0 + jax.random.uniform(k1, (self.mj_model.nq,), minval=-s, maxval=s)
        qvel = s * jax.random.normal(k2, (self.mj_model.nv,))
        return self.init(qpos, qvel, friction)

    def step(self, state: MjxAntState, action: jax.Array, friction: jax.Array):
        cfg, model = self.config, self.with_friction(friction)
        data = state.data.replace(ctrl=action)
        data = jax.lax.fori_loop(0, cfg.frame_skip, lambda _, d: mjx.step(model, d), data)
        xy = data.xpos[self._torso, :2]
        x_velocity = (xy[0] - state.torso_xy[0]) / self._dt
        z = data.qpos[2]
        finite = jnp.isfinite(data.qpos).all() & jnp.isfinite(data.qvel).all()
        healthy = finite & (z >= cfg.healthy_z_min) & (z <= cfg.healthy_z_max)
        reward = x_velocity + cfg.healthy_reward - cfg.ctrl_cost_weight * jnp.sum(action**2)
        steps = state.episode_steps + 1
        truncated = steps >= cfg.max_episode_steps
        return self._obs(data), MjxAntState(data, xy, steps), reward, ~healthy, truncated

    def step_autoreset(self, key: jax.Array, state: MjxAntState, action: jax.Array, friction):
        """:meth:`step`, then a reset with ``key`` where the episode ended.

        Returns ``(obs, state, reward, terminated, truncated, final_obs)``: ``obs`` / ``state``
        start the next episode where ``terminated | truncated``; ``final_obs`` is the
        observation the step reached. A friction change passed with the next call applies
        from the new episode's first step, as on the host.
        """
        final_obs, state, reward, terminated, truncated = self.step(state, action, friction)
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key, friction)
        pick = lambda new, old: jnp.where(done, new, old)  # noqa: E731
        state = jax.tree.map(pick, reset_state, state)
        return pick(reset_obs, final_obs), state, reward, terminated, truncated, final_obs
