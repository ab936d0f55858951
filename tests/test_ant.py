"""The ant benchmark: PPO on host-stepped MuJoCo Ant through the one engine
(docs/design.md §8, §13)."""

import jax.numpy as jnp
import numpy as np
import pytest

from _device_helpers import on_one_and_two_devices

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium")

from lopkit._errors import ConfigError  # noqa: E402
from lopkit._experiment import make_experiment, prepare_run_dir  # noqa: E402
from lopkit.benchmarks import BENCHMARKS  # noqa: E402
from lopkit.engine._runner import execute  # noqa: E402
from lopkit.mujoco_envs import FrictionConfig, friction_sequence  # noqa: E402
from lopkit.results import load  # noqa: E402

# A tiny agent, 64-step rollouts and 50-step episodes; a friction change is due 40 steps
# after the last one, so every seed changes friction within the run.
ROLLOUT = 64
SMALL = {
    "hidden": "8,8",
    "rollout_steps": str(ROLLOUT),
    "epochs": "2",
    "minibatches": "2",
    "change_every": "40",
    "threads": "2",
    "max_episode_steps": "50",
}
RUN = {
    "steps": 4 * ROLLOUT,
    "bin_size": ROLLOUT,
    "metrics_every": 2 * ROLLOUT,
    "probe_size": ROLLOUT,
    "chunk_bins": 1,
}


def test_the_paper_defaults_and_methods_resolve():
    assert "ant" in BENCHMARKS
    e = make_experiment("ant", "backprop")
    c = e.config
    assert (c.backend, c.version, c.schedule, c.change_every) == (
        "host",
        "v4",
        "slippery",
        2_000_000,
    )
    assert (c.hidden, c.lr, c.beta1, c.beta2, c.rollout_steps, c.epochs, c.minibatches) == (
        (256, 256), 1e-4, 0.9, 0.999, 2048, 10, 16
    )  # fmt: skip
    assert (c.gamma, c.gae_lambda, c.clip_ratio, c.entropy_coef) == (0.99, 0.95, 0.2, 0.0)
    assert tuple(c.friction_range) == (0.02, 2.0)
    assert e.run.bin_size == 50 * 2048 and e.run.probe_size == 1000
    assert "inactive_fraction" in e.run.metrics and "srank_fraction" in e.run.metrics

    def configs(method):
        m = make_experiment("ant", method, steps=2048, bin_size=2048)
        return dict(zip(m.method_names, m.remedy_configs, strict=True))

    assert configs("adam_equal_betas")["adam_equal_betas"].beta == 0.99
    assert configs("adam_equal_betas+l2")["l2"].weight_decay == 1e-3
    cbp = configs("adam_equal_betas+cbp+l2")
    assert cbp["l2"].weight_decay == 1e-4  # official cbp.yml, not l2.yml's 1e-3
    assert (cbp["cbp"].replacement_rate, cbp["cbp"].maturity_threshold) == (1e-4, 10_000)
    assert not cbp["cbp"].reset_optimizer_moments and not cbp["cbp"].next_bias_correction
    assert not cbp["cbp"].accumulate and cbp["cbp"].utility == "contribution"
    redo = configs("adam_equal_betas+redo+l2")
    assert redo["l2"].weight_decay == 1e-4 and redo["redo"].reset_every == 100
    # the user's setting still wins over a method default
    m = make_experiment("ant", "cbp+l2", {"l2.weight_decay": "3e-3"}, steps=2048, bin_size=2048)
    assert m.remedy_configs[1].weight_decay == 3e-3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "gpu"}, "backend must be one of host, mjx"),
        ({"backend": "mjx", "version": "v5"}, "v4 only"),
        ({"envs_per_agent": "2"}, "one env per agent"),
        ({"friction_range": "2,0.02"}, "low <= high"),
        ({"schedule": "icy"}, "schedule must be one of slippery, constant"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_experiment("ant", "backprop", settings, steps=2048, bin_size=2048)


def test_resume_equals_the_uninterrupted_run_and_frictions_follow_each_seed(tmp_path):
    """Host envs (simulator state, schedules, counters) in the checkpoint: a run cut after
    two chunks and resumed writes exactly the rows of the uninterrupted run; the recorded
    friction is each seed's own sequence, changed only as its schedule's index advances."""
    e = make_experiment("ant", "adam_equal_betas+cbp+l2", SMALL, seeds=2, **RUN)
    program, error_name = e.build()  # one program for the three calls: compiled once

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
    assert {"return", "episode_length", "friction", "task", "loss"} <= set(full.metric)
    assert {"inactive_fraction", "srank_fraction", "weight_magnitude"} <= set(full.metric)
    assert "policy/hidden_1" in set(full.layer)

    def series(metric, layer=""):
        rows = full[(full.metric == metric) & (full.layer == layer)]
        return rows.pivot(index="seed", columns="step", values="value").to_numpy()

    task, friction = series("task"), series("friction")
    assert (np.diff(task, axis=1) >= 0).all() and (task[:, -1] >= 1).all()  # changes happened
    config = FrictionConfig(change_every=40)
    for seed in range(2):
        sequence = friction_sequence(config, 0, seed, int(task[seed, -1]) + 1)
        np.testing.assert_allclose(friction[seed], sequence[task[seed].astype(int)], rtol=1e-6)
    assert friction[0, -1] != friction[1, -1]  # each seed its own values
    srank = series("srank_fraction", "policy/hidden_1")
    assert np.nanmin(srank) > 0 and np.nanmax(srank) <= 1


def test_a_seed_computes_the_same_beside_another_as_alone():
    run = {**RUN, "steps": 2 * ROLLOUT, "metrics": ("srank_fraction",), "metrics_every": ROLLOUT}
    both, _ = make_experiment("ant", "backprop", SMALL, seeds=2, **run).build()
    alone, _ = make_experiment("ant", "backprop", SMALL, seeds=1, first_seed=1, **run).build()
    _, errors, values = both.chunk(both.init(jnp.arange(2)), jnp.int32(0), 2)
    _, errors1, values1 = alone.chunk(alone.init(jnp.arange(1, 2)), jnp.int32(0), 2)
    assert np.isfinite(np.asarray(errors)).all()
    np.testing.assert_allclose(np.asarray(errors)[1], np.asarray(errors1)[0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(values)[1], np.asarray(values1)[0], rtol=1e-5)


_HOSTED_ON_DEVICES = """
import json, sys, jax, jax.numpy as jnp, numpy as np
from lopkit._experiment import make_experiment

settings = {**SMALL, "cbp.replacement_rate": "0.05", "cbp.maturity_threshold": "4"}
program = make_experiment("ant", "cbp+l2", settings, seeds=4, **RUN).build()[0]
state = program.init(jnp.arange(4, dtype=jnp.int32))
w = state["learner"]["params"]["policy/hidden_0"]["w"]
out = {}
for b in range(2):
    state, errors, values = program.chunk(state, jnp.int32(b), 1)
    replaced = sum(layer["replaced"] for layer in state["learner"]["rules"][0])
    kept = {"errors": errors, "values": values, "replaced": replaced,  # state is donated
            "w": state["learner"]["params"]["policy/hidden_0"]["w"], "obs": state["host"]["obs"]}
    out.update({f"{k}{b}": np.asarray(v) for k, v in kept.items()})
np.savez(sys.argv[1], **out)
print(json.dumps({"state_devices": len(w.sharding.device_set),
                  "result_devices": len(errors.sharding.device_set)}))
"""


def test_the_updates_of_a_hosted_run_split_across_devices_as_one_device_computes(tmp_path):
    """With 2 CPU devices the learners' updates of a host-stepped run (4 seeds, CBP+L2
    replacing units) run 2 + 2 on the two devices, acting stays one call on one device,
    and the run computes what one device computes: same rewards, weights, probes and
    simulator states. Each in its own process: the device count is set when JAX starts."""
    code = f"SMALL = {SMALL!r}\nRUN = {RUN!r}\n" + _HOSTED_ON_DEVICES
    reports, results = on_one_and_two_devices(code, tmp_path)
    assert reports[2] == {"state_devices": 2, "result_devices": 2}
    assert reports[1] == {"state_devices": 1, "result_devices": 1}
    one, two = results[1], results[2]
    assert np.isfinite(one["errors1"]).all() and one["replaced1"].min() > 0  # CBP replaced units
    # The first block's rollout is played with the initial policies, the same on both; its
    # updates and probes differ by float rounding at most.
    for name in ("errors0", "values0", "w0", "replaced0", "obs0"):
        np.testing.assert_allclose(two[name], one[name], rtol=2e-5, atol=1e-6, err_msg=name)
    # The second block's is played with the updated policies, whose rounding the contacts
    # amplify (measured, few XLA optimizations: observations 0.35 apart after 64 steps,
    # summed losses 1e-4, weights 2e-4 relative; optimized: 6e-5, 2e-7, 1e-7).
    for name in ("errors1", "values1", "w1", "replaced1"):
        np.testing.assert_allclose(two[name], one[name], rtol=1e-3, atol=1e-3, err_msg=name)


@pytest.mark.slow
def test_the_mjx_backend_is_one_compiled_program_with_a_traced_friction():
    """Traced, not compiled (MJX compiles take minutes on a CPU; `make bench` runs it): the
    whole chunk — MJX rollout, PPO update, records — is one jittable program, and
    each seed's friction is a value in its state, never a constant of the program."""
    import jax

    from lopkit.engine._program import chunk_capacity

    settings = {**SMALL, "backend": "mjx", "rollout_steps": "16", "max_episode_steps": "10"}
    run = {**RUN, "steps": 32, "bin_size": 16, "metrics": (), "metrics_every": 0, "probe_size": 16}
    program, _ = make_experiment("ant", "adam_equal_betas+l2", settings, seeds=3, **run).build()
    assert not program.hosted and program.record_names[-1] == "friction"
    state = jax.eval_shape(program.init, jnp.arange(3))
    assert state["stream"]["index"].shape == (3,)  # the schedule, per seed, in the state
    chunk = type(program)._chunk  # the jitted chunk (a method: the program is static)
    capacity = chunk_capacity(2)  # 2 bins of a chunk whose outputs hold `capacity` rows
    args = (program, program.constants, state, jnp.int32(0), jnp.int32(2), capacity)
    _, errors, values = chunk.eval_shape(*args)
    assert errors.shape == (3, capacity) and values.shape == (3, capacity, 4)  # + friction


def test_the_presets_are_valid_for_the_paper_methods():
    from lopkit.experiments import load_preset, preset_settings
    from lopkit.methods import parse_method

    for name, schedule, steps in (
        ("paper", "slippery", 20_480_000),
        ("paper_constant", "constant", 50_176_000),
        ("quick", "slippery", 204_800),
    ):
        preset = load_preset("ant", name)
        for method in ("backprop", "adam_equal_betas+l2", "adam_equal_betas+cbp+l2"):
            e = make_experiment("ant", method, preset_settings(preset, parse_method(method)))
            assert (e.config.schedule, e.run.steps) == (schedule, steps)
            assert e.run.bin_size % e.config.rollout_steps == 0 and e.run.probe_size == 1000
    quick = make_experiment("ant", "backprop", preset_settings(load_preset("ant", "quick"), []))
    assert quick.run.steps // quick.config.change_every >= 3  # several frictions per seed
