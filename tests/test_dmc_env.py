"""The continual DMC envs (lopkit.dmc_envs): dm-control's own envs, task switches at the set
env steps, the sources' normalization wrappers, exact checkpoints."""

import numpy as np
import pytest

pytest.importorskip("dm_control")

from dm_control import suite  # noqa: E402

from lopkit._errors import ConfigError  # noqa: E402
from lopkit.dmc_envs import DMCConfig, DMCEnvs  # noqa: E402
from lopkit.dmc_envs._suite import _RANDOM_STREAM  # noqa: E402
from lopkit.mujoco_envs import seed_sequence  # noqa: E402

RAW = {"normalize_observations": False, "normalize_rewards": False}


def _random_state(base_seed, seed):
    """The seed's task RandomState, drawn as DMCEnvs draws it."""
    return np.random.RandomState(np.random.MT19937(seed_sequence(base_seed, seed, _RANDOM_STREAM)))


def _actions(n, k, a, seed=0):
    return np.random.default_rng(seed).uniform(-1.3, 1.3, (n, k, a))  # some beyond [-1, 1]


@pytest.mark.parametrize(
    ("domain", "sequence", "steps", "switch_every"),
    [
        ("walker", ("stand", "walk", "run"), 1_030, 2_000),
        ("quadruped", ("walk", "run", "walk"), 70, 25),
    ],
)
def test_observations_and_rewards_are_dm_controls_own(domain, sequence, steps, switch_every):
    """Each env equals dm-control's env of the current task stepped with the same (clipped)
    actions, bit for bit: its flat observation (``flat_observation=True``), its reward; an
    episode ends at dm-control's time limit (walker: 1,000 steps, then auto-reset) or at a
    switch, where the next task's env starts a fresh episode."""
    config = DMCConfig(domain=domain, sequence=sequence, switch_every=switch_every, **RAW)
    envs = DMCEnvs([3], base_seed=7, config=config)
    random = _random_state(7, 3)
    direct = {
        t: suite.load(domain, t, task_kwargs={"random": random},
                      environment_kwargs={"flat_observation": True})
        for t in set(sequence)
    }  # fmt: skip
    current = direct[sequence[0]]
    obs = envs.reset()
    first = current.reset().observation["observations"]
    np.testing.assert_array_equal(obs[0], first.astype(np.float32))
    actions = _actions(steps, 1, envs.env(0).action_spec().shape[0])
    ends = []
    for t in range(steps):
        obs, reward, terminated, truncated, info = envs.step(actions[t])
        step = current.step(np.clip(actions[t][0], -1, 1))
        assert reward[0] == np.float32(step.reward) and info["raw_reward"][0] == step.reward
        assert not terminated[0]
        if (t + 1) % switch_every == 0:
            current = direct[sequence[((t + 1) // switch_every) % len(sequence)]]
            step = current.reset()
        elif step.last():
            assert info["episode_length"][0] == 1000
            step = current.reset()
        if truncated[0]:
            ends.append(t + 1)
        np.testing.assert_array_equal(obs[0], step.observation["observations"].astype(np.float32))
    switches = range(switch_every, steps + 1, switch_every)
    expected = sorted({*switches, *range(1000, steps + 1, 1000)})
    assert ends == expected


def test_the_task_switches_every_switch_every_env_steps_and_cycles():
    config = DMCConfig(domain="walker", sequence=("run", "stand"), switch_every=4, **RAW)
    envs = DMCEnvs([0, 1], config=config)
    envs.reset()
    seen = []
    for t in range(13):
        _, _, _, truncated, info = envs.step(np.zeros((2, 6)))
        assert (info["switched"] == ((t + 1) % 4 == 0)).all()
        assert (truncated == info["switched"]).all()  # a switch cuts the episode
        assert np.isnan(info["episode_return"]).all()  # … which is not a recorded episode
        seen.append((int(envs.tasks[0]), int(envs.task_id[0])))
    # run is walker's task 2, stand its task 0; switches after steps 4, 8, 12
    assert seen == [(0, 2)] * 3 + [(1, 0)] * 4 + [(2, 2)] * 4 + [(3, 0)] * 2
    assert envs.env(0).physics.data.time == pytest.approx(0.025)  # a fresh episode's first step


class _Gym:
    """dm-control's env as a gymnasium env (flat observations), to wrap in the sources'
    wrappers."""

    def __new__(cls, env):
        import gymnasium

        class Adapter(gymnasium.Env):
            observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (24,), np.float64)
            action_space = gymnasium.spaces.Box(-1, 1, (6,), np.float64)

            def reset(self, seed=None, options=None):
                return env.reset().observation["observations"], {}

            def step(self, action):
                s = env.step(action)
                return s.observation["observations"], s.reward, False, s.last(), {}

        return Adapter()


def test_normalization_is_what_the_sources_gymnasium_wrappers_compute():
    """C-CHAIN's make_env: NormalizeObservation, clip ±10, NormalizeReward(γ), clip ±10.
    lopkit keeps float64 statistics as the sources' gymnasium 0.29.1 does; the installed
    gymnasium 1.x keeps the observation statistics in float32, hence agreement to float32
    rounding rather than bit for bit."""
    gymnasium = pytest.importorskip("gymnasium")
    w = gymnasium.wrappers
    config = DMCConfig(domain="walker", sequence=("walk",), switch_every=10_000)
    envs = DMCEnvs([2], base_seed=1, config=config)
    direct = suite.load("walker", "walk", task_kwargs={"random": _random_state(1, 2)},
                        environment_kwargs={"flat_observation": True})  # fmt: skip
    space = gymnasium.spaces.Box(-np.inf, np.inf, (24,), np.float32)
    g = w.NormalizeObservation(_Gym(direct))
    g = w.TransformObservation(g, lambda o: np.clip(o, -10, 10), space)
    g = w.NormalizeReward(g, gamma=0.99)
    g = w.TransformReward(g, lambda r: np.clip(r, -10, 10))
    obs = envs.reset()
    np.testing.assert_allclose(obs[0], g.reset()[0], rtol=1e-5, atol=1e-6)
    for action in _actions(60, 1, 6, seed=4):
        obs, reward, _, _, info = envs.step(action)
        o, r, *_ = g.step(np.clip(action[0], -1, 1))
        np.testing.assert_allclose(obs[0], o, rtol=1e-5, atol=1e-6)
        assert reward[0] == pytest.approx(r, rel=1e-5)
    # scaled: after 60 steps the return's running std is far from 1 (measured: ×1.54)
    assert not np.isclose(reward[0], info["raw_reward"][0], rtol=0.2)


@pytest.mark.parametrize("domain", ["walker", "quadruped"])
def test_a_restored_state_continues_exactly(domain):
    """Physics, task position, RandomState, counters and normalization statistics: envs
    restored from a state_dict (a fresh process's envs) continue bit for bit, across a
    switch and an episode's auto-reset."""
    config = DMCConfig(domain=domain, switch_every=20)
    a = 6 if domain == "walker" else 12
    actions = _actions(60, 2, a, seed=9)
    one = DMCEnvs([0, 5], base_seed=2, config=config)
    one.reset()
    for t in range(30):
        one.step(actions[t])
    state = {k: v.copy() for k, v in one.state_dict().items()}
    after = [one.step(actions[t]) for t in range(30, 60)]
    two = DMCEnvs([0, 5], base_seed=2, config=config)
    two.load_state_dict(state)
    for t, expected in zip(range(30, 60), after, strict=True):
        got = two.step(actions[t])
        for x, y in zip(got[:4], expected[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(two.tasks, one.tasks)
    assert (one.tasks == 3).all()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="quadruped has no task 'stand'.*walk, run"):
        DMCConfig(domain="quadruped", sequence=("walk", "stand"))
    with pytest.raises(ConfigError, match="domain must be one of"):
        DMCConfig(domain="cheetah")
    envs = DMCEnvs([0], config=DMCConfig())
    envs.reset()
    with pytest.raises(ConfigError, match=r"actions must have shape \[1, 6\]"):
        envs.step(np.zeros((1, 12)))
