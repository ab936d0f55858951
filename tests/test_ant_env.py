"""Slippery Ant's environment layer: friction schedule, host envs, checkpoint
(docs/design.md §13)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("mujoco")
gym = pytest.importorskip("gymnasium")

from lopkit._config import build  # noqa: E402
from lopkit._errors import ConfigError  # noqa: E402
from lopkit.mujoco_envs import (  # noqa: E402
    AntConfig,
    AntEnvs,
    FrictionConfig,
    ScheduleState,
    advance,
    advance_traced,
    friction_sequence,
    friction_table,
    max_changes,
    seed_sequence,
)
from lopkit.mujoco_envs._ant import _RESET_STREAM  # noqa: E402

SLIPPERY = FrictionConfig()


def _actions(seed: int, steps: int, k: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, size=(steps, k, 8))


def _run(envs: AntEnvs, actions: np.ndarray) -> dict[str, np.ndarray]:
    out = {n: [] for n in ("obs", "reward", "terminated", "truncated", "friction")}
    for a in actions:
        obs, reward, terminated, truncated, info = envs.step(a)
        values = (obs, reward, terminated, truncated, info["friction"])
        for name, v in zip(out, values, strict=True):
            out[name].append(v)
    return {n: np.stack(v) for n, v in out.items()}


# -- the friction schedule ------------------------------------------------------------------


def test_friction_sequences_are_reproducible_and_independent_across_seeds():
    a = friction_sequence(SLIPPERY, 0, 1, 2000)
    assert np.array_equal(a, friction_sequence(SLIPPERY, 0, 1, 2000))
    assert np.array_equal(a[:50], friction_sequence(SLIPPERY, 0, 1, 50))  # longer extends
    b = friction_sequence(SLIPPERY, 0, 2, 2000)
    c = friction_sequence(SLIPPERY, 1, 1, 2000)
    assert not np.any(a == b) and not np.any(a == c)
    # independent streams: uncorrelated log-frictions (|r| ~ 1/sqrt(2000) ~ 0.02)
    assert abs(np.corrcoef(np.log(a), np.log(b))[0, 1]) < 0.1
    assert abs(np.corrcoef(np.log(a), np.log(c))[0, 1]) < 0.1


def test_friction_is_log_uniform_on_its_range():
    f = np.concatenate([friction_sequence(SLIPPERY, 0, s, 1000) for s in range(5)])
    assert f.min() >= 0.02 and f.max() <= 2.0
    lo, hi = math.log10(0.02), math.log10(2.0)
    counts, _ = np.histogram(np.log10(f), bins=4, range=(lo, hi))
    assert np.all(np.abs(counts / f.size - 0.25) < 0.03), counts  # flat in log10
    assert abs(np.log10(f).mean() - (lo + hi) / 2) < 0.03
    assert np.median(f) < 0.3  # far below the uniform median (~1.0): log-, not linear-uniform


def test_constant_schedule_is_one_and_never_changes():
    const = FrictionConfig(schedule="constant")
    assert np.array_equal(friction_sequence(const, 0, 3, 4), np.ones(4))
    assert advance(const, ScheduleState(), 10**9, True) == ScheduleState()


def test_change_waits_for_the_first_episode_end_after_change_every():
    cfg = FrictionConfig(change_every=10)
    s = ScheduleState()
    assert advance(cfg, s, 5, True) == s  # too early
    assert advance(cfg, s, 10, True) == s  # 10 - 0 is not > 10 (official `>`)
    assert advance(cfg, s, 30, False) == s  # due, but no episode end: waits
    s = advance(cfg, s, 11, True)
    assert s == ScheduleState(1, 11)
    assert advance(cfg, s, 21, True) == s  # counted from the previous change
    assert advance(cfg, s, 22, True) == ScheduleState(2, 22)


def test_traced_rule_and_table_match_the_host_rule():
    """The compiled back-end's schedule (jnp, vmapped over seeds) == :func:`advance`."""
    import jax

    cfg = FrictionConfig(change_every=30)
    rng = np.random.default_rng(0)
    ended = rng.random((3, 400)) < 0.1  # [seed, step]
    index, last = np.zeros(3, np.int64), np.zeros(3, np.int64)
    step_fn = jax.jit(lambda i, c, t, e: advance_traced(cfg, i, c, t, e))
    host = [ScheduleState() for _ in range(3)]
    for t in range(400):
        index, last = map(np.asarray, step_fn(index, last, t, ended[:, t]))
        host = [advance(cfg, h, t, bool(e)) for h, e in zip(host, ended[:, t], strict=True)]
        assert index.tolist() == [h.index for h in host]
        assert last.tolist() == [h.last_change for h in host]
    assert index.min() >= 5  # it did change, several times
    table = friction_table(cfg, 0, (0, 1, 2), 400)
    assert table.shape == (3, max_changes(cfg, 400) + 1) and index.max() < table.shape[1]
    np.testing.assert_array_equal(table[1], friction_sequence(cfg, 0, 1, table.shape[1]))
    # the densest possible schedule (an episode end every step) needs exactly the table
    dense = ScheduleState()
    for t in range(400):
        dense = advance(cfg, dense, t, True)
    assert dense.index == max_changes(cfg, 400)


def test_envs_change_friction_at_episode_ends_only():
    # zero actions: the ant stands, so every episode is truncated at 20 steps (ends at
    # steps 19, 39, 59, ...); due after 30 steps, the changes come at steps 39 and 79
    envs = AntEnvs(
        [4],
        config=AntConfig(max_episode_steps=20, threads=1),
        friction=FrictionConfig(change_every=30),
    )
    envs.reset()
    out = _run(envs, np.zeros((100, 1, 8)))
    assert out["truncated"][:, 0].nonzero()[0].tolist() == [19, 39, 59, 79, 99]
    assert not out["terminated"].any()
    seq = friction_sequence(FrictionConfig(), 0, 4, 3)
    expected = np.repeat(seq, [40, 40, 20])
    assert np.array_equal(out["friction"][:, 0], expected)
    assert np.all(envs.models[0].geom_friction[:, 0] == seq[2])  # every geom, floor included


# -- the host envs --------------------------------------------------------------------------


# gymnasium warns that v4 is out of date: it is compared here on purpose
@pytest.mark.filterwarnings("ignore:.*Ant-v4 is out of date:DeprecationWarning")
@pytest.mark.parametrize("version", ["v4", "v5"])
def test_host_envs_equal_gymnasium_ant(version):
    """Observations, rewards, terminations and resets of gymnasium's own Ant, to rounding.

    Actions reach ±1.5: MuJoCo clamps the control, the control cost uses the raw action.
    """
    envs = AntEnvs([3], base_seed=7, config=AntConfig(version=version, threads=1))
    env = gym.make(f"Ant-{version}", max_episode_steps=1000)
    env.unwrapped._np_random = np.random.Generator(
        np.random.PCG64(seed_sequence(7, 3, _RESET_STREAM))
    )
    env.unwrapped.model.geom_friction[:, 0] = envs.friction[0]
    ours = envs.reset()
    theirs, _ = env.reset()
    assert ours.shape == (1, 27 if version == "v4" else 105)
    np.testing.assert_array_equal(ours[0], theirs)
    ends = 0
    for a in _actions(0, 300, 1, scale=1.5):
        obs, reward, terminated, truncated, info = envs.step(a)
        o, r, te, tr, _ = env.step(a[0])
        np.testing.assert_allclose(info["final_obs"][0], o, rtol=0, atol=1e-9)
        assert reward[0] == pytest.approx(r, abs=1e-9)
        assert (terminated[0], truncated[0]) == (te, tr)
        if te or tr:
            ends += 1
            o, _ = env.reset()
        np.testing.assert_allclose(obs[0], o, rtol=0, atol=1e-9)
    assert ends >= 3  # the resets were compared too


def test_friction_changes_the_dynamics():
    def trajectory(f: float) -> np.ndarray:
        envs = AntEnvs(
            [0], config=AntConfig(threads=1), friction=FrictionConfig("constant", constant_value=f)
        )
        first = envs.reset()
        assert np.all(envs.models[0].geom_friction[:, 0] == f)
        return np.concatenate([first[None], _run(envs, _actions(1, 15, 1, 0.5))["obs"]])

    slippery, normal = trajectory(0.05), trajectory(1.0)
    np.testing.assert_array_equal(slippery[0], normal[0])  # same start, same actions
    assert np.abs(slippery[-1] - normal[-1]).max() > 0.1
    np.testing.assert_array_equal(normal, trajectory(1.0))  # and it is not noise


def test_envs_are_independent_and_threads_change_nothing():
    actions = _actions(2, 60, 3)
    alone = AntEnvs([5], config=AntConfig(threads=1))
    alone.reset()
    threaded = AntEnvs([9, 5, 11], config=AntConfig(threads=2))
    threaded.reset()
    together = _run(threaded, actions)
    assert together["terminated"].any()  # resets happened
    a = _run(alone, actions[:, 1:2])
    for name in a:
        np.testing.assert_array_equal(a[name][:, 0], together[name][:, 1])


def test_restore_then_step_equals_an_uninterrupted_run(tmp_path):
    cfg, fric = AntConfig(threads=2), FrictionConfig(change_every=40)
    actions = _actions(3, 250, 3)
    straight = AntEnvs([0, 1, 2], config=cfg, friction=fric)
    straight.reset()
    _run(straight, actions[:100])
    np.savez(tmp_path / "ckpt.npz", **straight.state_dict())
    expected = _run(straight, actions[100:])
    assert np.any(expected["friction"][0] != expected["friction"][-1])  # a change after
    assert expected["terminated"].any()

    resumed = AntEnvs([0, 1, 2], config=cfg, friction=fric)
    resumed.load_state_dict(dict(np.load(tmp_path / "ckpt.npz")))
    got = _run(resumed, actions[100:])
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for name in ("episodes", "total_steps", "episode_return"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(straight, name))


# -- bad input ------------------------------------------------------------------------------


def test_bad_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="low must be > 0"):
        FrictionConfig(low=0.0)
    with pytest.raises(ConfigError, match="low must be <= high"):
        FrictionConfig(low=3.0, high=2.0)
    with pytest.raises(ConfigError, match="slippery, constant"):
        FrictionConfig(schedule="slipery")
    with pytest.raises(ConfigError, match="unknown Ant version 'v3'.*v4, v5"):
        AntConfig(version="v3")
    with pytest.raises(ConfigError, match="unknown setting"):
        build(FrictionConfig, {"change_time": 10})
    assert build(FrictionConfig, {"change_every": "1_000"}).change_every == 1000
    envs = AntEnvs([0], config=AntConfig(threads=1))
    envs.reset()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="friction must be finite and > 0"):
            envs.set_friction(0, bad)
    with pytest.raises(ConfigError, match=r"actions must have shape \[1, 8\]"):
        envs.step(np.zeros((2, 8)))
    with pytest.raises(ConfigError, match="checkpoint is for seeds"):
        AntEnvs([1]).load_state_dict(envs.state_dict())


# -- MuJoCo XLA ------------------------------------------------------------------------------


@pytest.mark.slow
def test_mjx_ant_follows_the_host_ant_at_two_frictions():
    """Same start and actions, frictions 0.05 and 1.0 vmapped in one compile (170 s at load 9).

    Tolerance: before the first foot contact (steps 0–3) 1e-4 (float32 against float64).
    After it, MJX's pyramidal friction cone is spanned by other tangent directions than
    MuJoCo C's (a cone orientation, not a bug; with elliptic cones the two agree to ~1e-4
    for 8–14 steps), so over 20 steps the joint positions agree to 0.15 — small beside
    the 0.4 that the friction change itself makes.
    """
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    from lopkit.mujoco_envs import MjxAnt

    frictions = (0.05, 1.0)
    actions = _actions(1, 20, 1)[:, 0]
    host = []
    for f in frictions:
        envs = AntEnvs(
            [0], config=AntConfig(threads=1), friction=FrictionConfig("constant", constant_value=f)
        )
        first = envs.reset()
        qpos, qvel = envs.datas[0].qpos.copy(), envs.datas[0].qvel.copy()
        host.append(np.concatenate([first, _run(envs, actions[:, None])["obs"][:, 0]]))
    host = np.stack(host)  # [friction, step, obs]

    env = MjxAnt()

    def trajectory(friction):
        obs, state = env.init(jnp.asarray(qpos), jnp.asarray(qvel), friction)
        # 20 steps before the limit, so the last step truncates and auto-resets
        state = state._replace(episode_steps=jnp.int32(env.config.max_episode_steps - 20))
        keys = jax.random.split(jax.random.key(3), len(actions))

        def body(state, xs):
            key, action = xs
            obs, state, _, terminated, truncated, final = env.step_autoreset(
                key, state, action, friction
            )
            return state, (obs, final, terminated, truncated)

        state, (rest, final, terminated, truncated) = jax.lax.scan(
            body, state, (keys, jnp.asarray(actions, jnp.float32))
        )
        return jnp.concatenate([obs[None], final]), rest, terminated, truncated, state

    fr = jnp.asarray(frictions, jnp.float32)
    mjx, obs, terminated, truncated, state = jax.jit(jax.vmap(trajectory))(fr)
    mjx = np.asarray(mjx)  # [friction, step, obs]: the observations the steps reached
    # auto-reset: only the last step truncates; before it obs == the step's, after it a
    # fresh episode (time 0, step 0) whose first observation is returned
    assert not np.any(terminated) and np.all(truncated[:, -1]) and not np.any(truncated[:, :-1])
    np.testing.assert_array_equal(np.asarray(obs)[:, :-1], mjx[:, 1:-1])
    np.testing.assert_array_equal(state.episode_steps, 0)
    np.testing.assert_array_equal(state.data.time, 0)
    np.testing.assert_array_equal(obs[:, -1, 13:], state.data.qvel)
    assert np.abs(np.asarray(obs)[:, -1] - mjx[:, -1]).max() > 0.1
    error = np.abs(mjx - host)
    assert error[:, :4].max() < 1e-4, error[:, :4].max()
    assert error[:, :, :13].max() < 0.15, error[:, :, :13].max(axis=(1, 2))
    friction_effect = np.abs(host[0, -1, :13] - host[1, -1, :13]).max()
    assert friction_effect > 0.3
    assert np.abs(mjx[0, -1, :13] - mjx[1, -1, :13]).max() > 0.3  # traced per seed
    assert error[:, -1, :13].max() < friction_effect / 3
