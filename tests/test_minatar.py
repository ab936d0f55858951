"""The minatar benchmark's environments: a game sequence (union actions, padded channels,
switches at the right steps, per-seed orders) and the observation permutation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _resume_helpers import run_cut_and_resumed
from lopkit._errors import ConfigError
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


PPO = {"agent": "ppo", "channels": "4", "hidden": "8", "rollout_steps": "64",
       "epochs": "2", "minibatches": "2"}  # fmt: skip
PPO_RUN = {"steps": 256, "bin_size": 64, "metrics_every": 128, "probe_size": 32}


def test_ppo_plays_minatar_through_the_same_engine():
    e = make_experiment(
        "minatar", "redo", {**PPO, "redo.reset_every": "4", "redo.threshold": "0.5"},
        seeds=2, **PPO_RUN,
    )  # fmt: skip
    program, _ = e.build()
    assert program.stream.observations == 400 and program.stream.actions == 3
    net = program.learner.net.config
    assert net.torso == "conv" and net.input_shape == (10, 10, 4)  # MinAtar's conv torso
    params = program.learner.net.init(jax.random.PRNGKey(0))
    assert params["policy/hidden_0"]["w"].shape == (3, 3, 4, 4)  # 3×3, 4 → 4 channels
    assert params["value/hidden_1"]["w"].shape == (8 * 8 * 4, 8)
    assert (e.config.lr, e.config.eps, e.config.max_grad_norm) == (3e-4, 1e-5, 0.5)  # Pgx
    state = program.init(jnp.arange(2, dtype=jnp.int32))
    state, errors, values = program.chunk(state, jnp.int32(0), 4)
    assert np.isfinite(np.asarray(errors)).all()
    assert ("dormant_fraction", "policy/hidden_0") in program.labels
    assert sum(int(r["replaced"].sum()) for r in state["learner"]["rules"][0]) > 0
    # the user's settings override the agent's defaults; DQN keeps Dopamine's
    mine = make_experiment("minatar", "backprop", {**PPO, "lr": "1e-3"}, seeds=1, **PPO_RUN)
    assert (mine.config.lr, mine.config.eps) == (1e-3, 1e-5)
    dqn = make_experiment("minatar", "backprop", SMALL, seeds=1, steps=64)
    assert (dqn.config.lr, dqn.config.eps, dqn.config.max_grad_norm) == (2.5e-4, 3.125e-4, 0)


def _ppo_sequence(seeds, **run):
    settings = {**PPO, "change": "sequence", "sequence": "breakout,freeway", "change_every": "96"}
    return make_experiment("minatar", "backprop", settings, seeds=seeds, **{**PPO_RUN, **run})


def test_ppo_plays_the_game_sequence_switching_every_change_every_steps():
    program, _ = _ppo_sequence(2).build()
    assert program.stream.actions == 5  # the union of Breakout's and Freeway's action sets
    assert program.learner.net.config.input_shape == (10, 10, 7)  # Freeway's 7 channels
    state = program.init(jnp.arange(2, dtype=jnp.int32))
    state, _, values = program.chunk(state, jnp.int32(0), 4)
    task = np.asarray(values)[..., program.record_names.index("task")]
    # one block (rollout) of 64 steps per bin, the task read at its end: the switches after
    # env steps 96 and 192 show in the blocks ending at 128 and 192
    np.testing.assert_array_equal(task, [[0, 1, 2, 2], [0, 1, 2, 2]])
    stream = state["stream"]
    np.testing.assert_array_equal(stream["game"], [0, 0])  # task 2: Breakout again
    # the last rollout (steps 192–255) is Breakout's: its padded channels are empty
    seen = np.asarray(stream["recent"]).reshape(2, 64, 10, 10, 7)
    assert not seen[..., 4:].any() and seen[..., :4].any()


def test_a_ppo_run_on_the_sequence_alone_equals_it_in_a_batch_bit_for_bit():
    program, _ = _ppo_sequence(3).build()
    assert program.seed_map == "split"
    state = program.init(jnp.arange(3, dtype=jnp.int32))
    state, errors, values = program.chunk(state, jnp.int32(0), 4)
    alone, _ = _ppo_sequence(1).build()
    s1 = alone.init(jnp.asarray([2], jnp.int32))
    s1, e1, v1 = alone.chunk(s1, jnp.int32(0), 4)
    np.testing.assert_array_equal(np.asarray(errors)[2], np.asarray(e1)[0])
    np.testing.assert_array_equal(np.asarray(values)[2], np.asarray(v1)[0])
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(state),
        jax.tree_util.tree_leaves(s1),
        strict=True,
    ):
        np.testing.assert_array_equal(a[2], b[0], err_msg=str(path))


def test_a_resumed_ppo_sequence_equals_the_uninterrupted_run(tmp_path):

    full = run_cut_and_resumed(_ppo_sequence(2, chunk_bins=1), tmp_path)
    assert {"return", "loss", "task", "dormant_fraction"} <= set(full.metric)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"envs_per_agent": "2"}, "one env per agent"),
        ({"env": "cartpole", "torso": "conv"}, "use torso=mlp"),
        ({"sequence": "breakout"}, "two or more different games"),
        ({"change": "sequence"}, "change=sequence needs the games"),
        ({"change": "permutation", "sequence": "breakout,freeway"}, "must be sequence"),
        ({"rollout_steps": "60", "minibatches": "8"}, "must be a multiple of minibatches"),
    ],
)
def test_bad_ppo_settings_are_clear_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_experiment("minatar", "backprop", {**PPO, **settings}, seeds=1, **PPO_RUN)


def test_architecture_remedies_are_refused_on_the_conv_agent_and_work_on_the_mlp_one():
    with pytest.raises(ConfigError, match="layernorm.*torso=mlp"):
        make_experiment("minatar", "layernorm", PPO, seeds=1, **PPO_RUN)
    e = make_experiment("minatar", "layernorm", {**PPO, "torso": "mlp"}, seeds=1, **PPO_RUN)
    assert e.build()[0].learner.net.config.layernorm


def test_minatar_maps_are_stored_as_bits_and_cartpole_as_floats():
    assert Games(("Breakout-MinAtar",)).boolean and not Games(("CartPole-v1",)).boolean
    e = make_experiment("minatar", "backprop", {"replay_capacity": "1000"}, steps=400)
    program, _ = e.build()
    assert program.stream.replay.packed and program.stream.replay.stored_size == 50
    assert program.stream.replay.bytes_per_seed == 1000 * (2 * 50 + 10) + 8
