"""The minatar benchmark's environments: a game sequence (union actions, padded channels,
switches at the right steps, per-seed orders) and the observation permutation."""

import jax.numpy as jnp
import numpy as np

from lopkit._experiment import make_experiment
from lopkit.benchmarks._minatar import GAMES
from lopkit.rl._dqn import Games

SMALL = {
    "replay_capacity": "256",
    "min_replay": "64",
    "batch": "8",
    "channels": "4",
    "hidden": "8",
    "epsilon_decay": "100000",  # ε = 1: every action is tried
}


def test_a_sequence_acts_in_the_union_of_the_games_action_sets():
    games = Games(("Breakout-MinAtar", "Freeway-MinAtar"))
    assert games.minimal_sets == ((0, 1, 3), (0, 2, 4))  # noop left right / noop up down
    assert games.union == (0, 1, 2, 3, 4) and games.actions == 5
    assert games.obs_shape == (10, 10, 7)  # Freeway's 7 channels; Breakout's 4 padded
    single = Games(("Breakout-MinAtar",))
    assert single.actions == 3 and single.obs_shape == (10, 10, 4)
    everything = Games(tuple(f"{g}-MinAtar" for g in ("SpaceInvaders", "Asterix", "Breakout")))
    assert everything.union == (0, 1, 2, 3, 4, 5)


def test_the_game_sequence_switches_every_change_every_steps():
    e = make_experiment(
        "minatar", "backprop", {**SMALL, "sequence": "breakout,freeway", "change_every": "48"},
        seeds=2, steps=192, bin_size=24, metrics=(), metrics_every=0,
    )  # fmt: skip
    program, _ = e.build()
    assert program.learner.net.config.actions == 5
    state = program.init(jnp.arange(2, dtype=jnp.int32))
    state, _, values = program.chunk(state, jnp.int32(0), 8)
    task = np.asarray(values)[..., program.record_names.index("task")]
    # a bin is 6 blocks of 4 steps; the task is recorded at each block's end and averaged:
    # the switch after env step 48 shows in the last block of bin 1, and so on
    expected = [0, 1 / 6, 1, 7 / 6, 2, 13 / 6, 3, 19 / 6]
    np.testing.assert_allclose(task, [expected, expected], rtol=1e-6)
    stream = state["stream"]
    np.testing.assert_array_equal(stream["task"], [4, 4])
    np.testing.assert_array_equal(stream["game"], [0, 0])  # task 4: game 4 mod 2 = Breakout
    buf = stream["buffer"]
    obs = np.stack([program.stream.replay.decode(buf["obs"][k]) for k in range(2)])
    padded = obs[..., 4:].reshape(2, 256, -1).any(-1)  # channels Breakout does not have
    for k in range(2):  # slot i holds env step i + 1
        assert not padded[k, :48].any() and not padded[k, 96:144].any()  # Breakout
        assert padded[k, 48:96].any() and padded[k, 144:192].any()  # Freeway
    actions = np.asarray(buf["action"])[:, :192]
    assert set(actions.ravel()) == {0, 1, 2, 3, 4}
    # the last transition of each game is cut (no n-step return runs into the next game)
    ends = np.asarray(buf["end"])
    assert ends[:, [47, 95, 143]].all()


def test_per_seed_orders_are_permutations_that_differ():
    e = make_experiment(
        "minatar", "backprop",
        {**SMALL, "sequence": "space_invaders,asterix,breakout,freeway", "change_every": "1000",
         "per_seed_order": "true"},
        seeds=6, steps=8, bin_size=4, metrics=(), metrics_every=0,
    )  # fmt: skip
    program, _ = e.build()
    state = program.init(jnp.arange(6, dtype=jnp.int32))
    orders = np.asarray(state["stream"]["order"])
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 1
    np.testing.assert_array_equal(state["stream"]["game"], orders[:, 0])


def test_an_observation_permutation_reorders_what_the_agent_sees():
    e = make_experiment(
        "minatar", "backprop", {**SMALL, "change": "permutation", "change_every": "40"},
        seeds=1, steps=80, bin_size=40, metrics=(), metrics_every=0,
    )  # fmt: skip
    program, _ = e.build()
    state = program.init(jnp.zeros((1,), jnp.int32))
    state, _, _ = program.chunk(state, jnp.int32(0), 2)
    stream = state["stream"]
    perm = np.asarray(stream["perm"][0])
    assert int(stream["task"][0]) == 2 and sorted(perm) == list(range(400))
    assert (perm != np.arange(400)).any()
    raw = np.asarray(stream["obs"][0])
    seen = np.asarray(program.stream.present({"perm": stream["perm"][0]}, stream["obs"][0]))
    np.testing.assert_array_equal(seen.reshape(-1), raw.reshape(-1)[perm])


def test_the_presets_are_valid_for_backprop_and_redo():
    from lopkit.experiments import load_preset, preset_settings
    from lopkit.methods import parse_method

    for name in ("quick", "paper"):
        preset = load_preset("minatar", name)
        for method in ("backprop", "redo"):
            e = make_experiment("minatar", method, preset_settings(preset, parse_method(method)))
            assert e.run.seeds >= 5 and e.config.env in GAMES  # a MinAtar game
            assert e.run.bin_size % e.config.block_steps == 0
    redo = make_experiment(
        "minatar", "redo", preset_settings(load_preset("minatar", "quick"), ["redo"])
    )
    c = redo.remedy_configs[0]
    assert (c.threshold, c.reset_every, c.decay_rate) == (0.1, 1000, 0.0)  # ReDo's DQN setting


def test_the_agent_flag_sets_the_agent(capsys, tmp_path):
    from _cli_helpers import run_cli

    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "run", "minatar", "--agent", "sac", "--no-progress", "--out", str(out)
    )
    assert code == 2 and "agent must be one of dqn" in err and not out.exists()


def test_ppo_plays_minatar_through_the_same_engine():
    e = make_experiment(
        "minatar", "redo",
        {"agent": "ppo", "env": "breakout", "hidden": "16", "rollout_steps": "128",
         "epochs": "2", "minibatches": "4", "redo.reset_every": "4", "redo.threshold": "0.5"},
        seeds=2, steps=256, bin_size=128, metrics_every=128, probe_size=64,
    )  # fmt: skip
    program, _ = e.build()
    assert program.stream.observations == 400 and program.stream.actions == 3
    state = program.init(jnp.arange(2, dtype=jnp.int32))
    state, errors, values = program.chunk(state, jnp.int32(0), 2)
    assert np.isfinite(np.asarray(errors)).all()
    assert ("dormant_fraction", "policy/hidden_0") in program.labels
    assert sum(int(r["replaced"].sum()) for r in state["learner"]["rules"][0]) > 0


def test_ppo_refuses_the_game_sequence():
    import pytest

    from lopkit._errors import ConfigError

    with pytest.raises(ConfigError, match="runs with agent=dqn"):
        make_experiment("minatar", "backprop", {"agent": "ppo", "sequence": "breakout,freeway"})


def test_minatar_maps_are_stored_as_bits_and_cartpole_as_floats():
    assert Games(("Breakout-MinAtar",)).boolean and not Games(("CartPole-v1",)).boolean
    e = make_experiment("minatar", "backprop", {"replay_capacity": "1000"}, steps=400)
    program, _ = e.build()
    assert program.stream.replay.packed and program.stream.replay.stored_size == 50
    assert program.stream.replay.bytes_per_seed == 1000 * (2 * 50 + 10) + 8
