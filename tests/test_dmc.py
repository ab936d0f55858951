"""The dmc benchmark: PPO on continual DeepMind Control Suite tasks, dm-control stepped on the
host through the general hosted path (docs/design.md §8; docs/benchmarks.md "Continual DMC")."""

import io
from contextlib import redirect_stdout

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("dm_control")

from lopkit._errors import ConfigError  # noqa: E402
from lopkit._experiment import make_experiment, prepare_run_dir  # noqa: E402
from lopkit.engine._runner import execute  # noqa: E402
from lopkit.results import load  # noqa: E402

# A tiny agent, 64-step rollouts; the task switches every 96 env steps (mid-rollout too)
ROLLOUT = 64
SMALL = {
    "hidden": "8,8",
    "rollout_steps": str(ROLLOUT),
    "epochs": "2",
    "minibatches": "2",
    "switch_every": "96",
}
RUN = {
    "steps": 4 * ROLLOUT,
    "bin_size": ROLLOUT,
    "metrics_every": 2 * ROLLOUT,
    "probe_size": ROLLOUT,
    "chunk_bins": 1,
}


def test_the_sources_settings_are_the_defaults():
    e = make_experiment("dmc", "backprop")
    c = e.config
    assert (c.domain, c.order, c.switch_every) == ("walker", ("stand", "walk", "run"), 999_424)
    assert (c.hidden, c.lr, c.eps, c.rollout_steps, c.epochs, c.minibatches) == (
        (256, 256), 3e-4, 1e-5, 2048, 10, 32
    )  # fmt: skip
    assert (c.max_grad_norm, c.value_coef, c.entropy_coef) == (0.5, 0.25, 0.0)
    assert c.normalize_observations and c.normalize_rewards and not c.bootstrap_truncation
    assert e.run.steps == 3 * 999_424 and e.run.bin_size == 8 * 2048
    quadruped = make_experiment("dmc", "backprop", {"domain": "quadruped"}).config
    assert quadruped.order == ("walk", "run", "walk")


def test_lopkit_list_dmc_shows_the_settings_and_sources():
    from lopkit.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["list", "dmc"]) in (0, None)
    text = out.getvalue()
    assert "C-CHAIN" in text and "switch_every = 999424" in text and "domain = 'walker'" in text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"domain": "cheetah"}, "domain must be one of walker, quadruped"),
        ({"domain": "quadruped", "sequence": "walk,stand"}, "quadruped has no task 'stand'"),
        ({"sequence": "stand,jump"}, "walker has no task 'jump'.*stand, walk, run"),
        ({"envs_per_agent": "2"}, "one env per agent"),
        ({"bootstrap_truncation": "true"}, "truncation as terminal"),
        ({"switch_every": "0"}, "switch_every must be"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_experiment("dmc", "backprop", settings, steps=2048, bin_size=2048)


def test_resume_equals_the_uninterrupted_run_and_tasks_switch_at_their_steps(tmp_path):
    """The simulators' state, task positions, random states and normalization statistics
    are in the checkpoint: a run cut after two chunks and resumed writes exactly the rows of
    the uninterrupted run. The recorded task is the sequence's at each bin's end."""
    e = make_experiment("dmc", "adam_equal_betas+cbp+l2", SMALL, seeds=2, **RUN)
    program, error_name = e.build()

    def run(name, **options):
        out = tmp_path / name
        if not out.exists():
            prepare_run_dir(out, e, resume=False, overwrite=False)
        bins = e.run.steps // e.run.bin_size
        args = {"chunk_bins": 1, "progress": False, "error_name": error_name, "log": None}
        return execute(program, e.seed_ids, bins, out, **args, **options)

    run("full")
    assert not run("cut", stop_after_chunks=2)["finished"]
    assert run("cut", resume=True)["bins_run"] == 2
    full, resumed = load(tmp_path / "full"), load(tmp_path / "cut")
    assert len(full) == len(resumed)
    np.testing.assert_array_equal(full["step"], resumed["step"])
    np.testing.assert_array_equal(full["value"].to_numpy(), resumed["value"].to_numpy())
    assert {"return", "episode_length", "task", "task_id", "loss"} <= set(full.metric)
    assert {"inactive_fraction", "srank_fraction", "weight_magnitude"} <= set(full.metric)

    def series(metric):
        rows = full[(full.metric == metric) & (full.layer == "")]
        return rows.pivot(index="seed", columns="step", values="value").to_numpy()

    # bins end at env steps 64, 128, 192, 256; switches after 96 and 192: stand, walk, run
    np.testing.assert_array_equal(series("task"), [[0, 1, 2, 2]] * 2)
    np.testing.assert_array_equal(series("task_id"), [[0, 1, 2, 2]] * 2)
    # no episode reaches dm-control's 1,000 steps: the switches cut trajectories, which are
    # not episodes, so no bin has a return
    assert np.isnan(series("return")).all() and np.isnan(series("episode_length")).all()


def test_a_seed_computes_the_same_beside_another_as_alone():
    """As for ant (docs/design.md §2: PPO's minibatch products agree across batch
    compositions to rounding)."""
    run = {**RUN, "steps": 2 * ROLLOUT, "metrics": ("srank_fraction",), "metrics_every": ROLLOUT}
    settings = {**SMALL, "domain": "quadruped"}
    both, _ = make_experiment("dmc", "backprop", settings, seeds=2, **run).build()
    alone, _ = make_experiment("dmc", "backprop", settings, seeds=1, first_seed=1, **run).build()
    state, errors, values = both.chunk(both.init(jnp.arange(2)), jnp.int32(0), 2)
    state1, errors1, values1 = alone.chunk(alone.init(jnp.arange(1, 2)), jnp.int32(0), 2)
    assert np.isfinite(np.asarray(errors)).all()
    np.testing.assert_allclose(np.asarray(errors)[1], np.asarray(errors1)[0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(values)[1], np.asarray(values1)[0], rtol=1e-5)
    # each seed its own envs
    assert not np.array_equal(state["host"]["obs"][0], state["host"]["obs"][1])


def test_the_presets_are_valid():
    from lopkit.experiments import load_preset, preset_settings

    for name, domain, tasks in (
        ("paper", "walker", 3),
        ("paper_quadruped", "quadruped", 3),
        ("quick", "walker", 3),
    ):
        e = make_experiment("dmc", "backprop", preset_settings(load_preset("dmc", name), []))
        assert e.config.domain == domain
        assert e.run.steps == tasks * e.config.switch_every
        assert e.config.switch_every % e.config.rollout_steps == 0  # switches between rollouts
        assert e.run.bin_size % e.config.rollout_steps == 0
