"""A run computes the same bits alone as inside any batch: beside other seeds, beside other
values of a swept setting, in a plain program or a swept one (one CPU device; across
devices see test_engine).

The runs of each batch here differ in what they *do*, not only in their data: each
remedy's event setting (a replacement rate, a maturity, a threshold, a reset period, a
step size) takes two values, so one run replaces a unit, resets or draws noise on a step
where the run beside it does not. Every run of the grid is then compared with the same
point run alone (seeds=1: a batch of one) — errors and every leaf of the learner's state,
bit for bit. Runs in lockstep (equal settings) would hide a dependence on the batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._experiment import make_experiment
from lopkit.methods import REMEDIES


@pytest.fixture(autouse=True)
def _release_compiled_programs_after_each_test():
    """Each test here compiles several programs of its own; run whole in one process
    (``-n 0``) the module's compiled code reached the kernel's limit of memory mappings
    and XLA segfaulted at its 39th test (conftest releases them only per module)."""
    yield
    jax.clear_caches()


RUN = {"steps": 300, "bin_size": 100, "metrics": ()}
SEEDS = 2
BASE = {"flip_period": 50}  # task boundaries every 50 steps (boundary events act)
# Per remedy: settings under which its rule acts within 300 steps, and the setting swept
# (two values that make the runs' events differ). Remedies without a continuous setting
# of their own sweep the step size.
ACTIVE = {
    "cbp": {"cbp.maturity_threshold": 20},
    "redo": {"redo.reset_every": 50},
    "snr": {"snr.min_threshold": 3},
    "hare_tortoise": {"hare_tortoise.reset_every": 50},
    "parseval": {"parseval.input_scale": "true"},  # a learned input scale in every run
    "regrama": {"regrama.reset_every": 50},
    "plasticity_injection": {
        "plasticity_injection.inject_every": 100,
        "plasticity_injection.injections": 2,
    },
}
SWEEP = {
    "cbp": {"cbp.replacement_rate": "0.02,0.1"},
    "redo": {"redo.threshold": "0.3,0.8"},
    "snr": {"snr.percentile": "0.8,0.95"},
    "shrink_perturb": {"shrink_perturb.noise_std": "0.001,0.01"},
    "shrink_perturb_boundary": {"shrink_perturb_boundary.shrink": "0.5,0.9"},
    "upgd": {"upgd.noise_std": "0.001,0.01"},
    "weight_clip": {"weight_clip.kappa": "0.5,2"},
    "l2": {"l2.weight_decay": "0.001,0.01"},
    "l2_init": {"l2_init.weight_decay": "0.001,0.01"},
    "l2_decoupled": {"l2_decoupled.weight_decay": "0.001,0.01"},
    "adam_equal_betas": {"adam_equal_betas.beta": "0.9,0.99"},
    "parseval": {"parseval.coefficient": "0.001,0.01"},
    "spectral": {"spectral.coefficient": "0.001,0.01"},
    "dash": {"dash.floor": "0.1,0.6"},
    # nap, fire (its boundaries), dff: the step size
    "c_chain": {"c_chain.relative_scale": "0.01,0.1"},
    "sam": {"sam.rho": "0.01,0.1"},
    "hare_tortoise": {"hare_tortoise.momentum": "0.5,0.9"},
    "regrama": {"regrama.threshold": "0.3,0.8"},
    "trac": {"trac.s_init": "1e-8,1e-3"},
}
COMPOSITIONS = [
    "cbp+l2",
    "redo+shrink_perturb",
    "l2_init+cbp+reset_head",
    "dash+l2",
    "fire+cbp",
]


def _settings(method: str) -> dict[str, str]:
    out = dict(BASE)
    names = method.split("+")
    for name in names:
        out.update(ACTIVE.get(name, {}))
    swept = SWEEP.get(names[0], {"lr": "0.01,0.03"})
    return {**out, **swept}


def _leaves(tree):
    return jax.tree_util.tree_leaves_with_path(tree)


@pytest.mark.parametrize("method", [*REMEDIES, *COMPOSITIONS])
def test_a_run_in_a_grid_equals_the_run_alone_bit_for_bit(method):
    grid = make_experiment("scr", method, _settings(method), seeds=SEEDS, **RUN)
    ((name, values),) = grid.axes
    program, _ = grid.build()
    seeds, settings = grid.runs()
    state = program.init(jnp.asarray(seeds), jax.tree_util.tree_map(jnp.asarray, settings))
    state, errors, _ = program.chunk(state, jnp.int32(0), RUN["steps"] // RUN["bin_size"])
    learner = jax.device_get(state["learner"])
    errors = np.asarray(errors)
    for h, value in enumerate(values):
        point = {**_settings(method), name: str(value)}
        alone = make_experiment("scr", method, point, seeds=1, **RUN).build()[0]
        for k in range(SEEDS):
            s = alone.init(jnp.asarray([k], jnp.int32))
            s, e, _ = alone.chunk(s, jnp.int32(0), RUN["steps"] // RUN["bin_size"])
            r = h * SEEDS + k
            np.testing.assert_array_equal(errors[r], np.asarray(e)[0], err_msg=f"run {r}")
            mine = dict(_leaves(jax.device_get(s["learner"])))
            for path, leaf in _leaves(learner):
                np.testing.assert_array_equal(
                    leaf[r], mine[path][0], err_msg=f"run {r} {jax.tree_util.keystr(path)}"
                )
    # the two values made the runs act differently (else the test would be void)
    assert not np.array_equal(errors[:SEEDS], errors[SEEDS:])


def test_probes_of_a_run_are_the_same_alone_and_in_a_batch():
    """The probes (dead units, effective rank, weight magnitude on a 2,000-example batch)
    are computed one run at a time, so a long contraction is summed in the same order
    whatever the batch (it was not: the effective rank differed in its last digit)."""
    run = {"steps": 2_000, "bin_size": 500, "metrics_every": 1_000}
    settings = {"lr": "0.003,0.01", "cbp.maturity_threshold": 20}
    grid = make_experiment("scr", "cbp", settings, seeds=3, **run)
    program, _ = grid.build()
    seeds, values = grid.runs()
    state = program.init(jnp.asarray(seeds), jax.tree_util.tree_map(jnp.asarray, values))
    _, _, probes = program.chunk(state, jnp.int32(0), 4)
    probes = np.asarray(probes)
    assert np.isfinite(probes[:, 1::2]).all()  # probes at the end of bins 2 and 4
    alone = make_experiment("scr", "cbp", {**settings, "lr": "0.01"}, seeds=1, **run)
    program1 = alone.build()[0]
    for k in range(3):
        s = program1.init(jnp.asarray([k], jnp.int32))
        _, _, p = program1.chunk(s, jnp.int32(0), 4)
        np.testing.assert_array_equal(probes[3 + k], np.asarray(p)[0])


def test_the_isa_cap_is_on_here_and_yields_to_the_users_choice(monkeypatch):
    import os
    import platform

    from lopkit import _devices

    # The bit-exact tests above ran under the cap: lopkit configured JAX (tests/conftest.py
    # calls _devices.configure, as lopkit's first run does) before the backend started.
    assert _devices._configured and not _devices.isa_flag()
    if platform.machine().lower() in ("x86_64", "amd64") and not os.environ.get("LOPKIT_CPU_ISA"):
        assert "--xla_cpu_max_isa=AVX" in os.environ["XLA_FLAGS"].split()

    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.delenv("LOPKIT_CPU_ISA", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    assert _devices.isa_flag() == "--xla_cpu_max_isa=AVX"  # no FMA: exact batching
    monkeypatch.setenv("LOPKIT_CPU_ISA", "native")
    assert _devices.isa_flag() is None
    monkeypatch.setenv("LOPKIT_CPU_ISA", "AVX2")
    assert _devices.isa_flag() == "--xla_cpu_max_isa=AVX2"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2")
    assert _devices.isa_flag() is None  # the user's own flag stands
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    monkeypatch.delenv("XLA_FLAGS")
    assert _devices.isa_flag() is None


# The RL agents: a grid of two step sizes × 2 seeds (seed_map "split": env steps batched,
# each run's updates alone) against each point alone, stream state included. With the
# updates batched ("vmap") the two MinAtar cases failed here (a conv filter's gradient
# summed in a batch-dependent order); control PPO's did not at this size (its [128, 256]
# minibatch products did, 8 seeds against one: test_control).
RL = {
    "dqn-breakout": (
        "minatar", "redo",
        {"replay_capacity": "256", "min_replay": "32", "batch": "16", "channels": "4",
         "hidden": "16", "epsilon_decay": "200", "target_update_period": "8",
         "redo.reset_every": "8", "redo.threshold": "0.3", "lr": "0.001,0.003"},
        {"steps": 240, "bin_size": 80},
    ),
    "ppo-control": (
        "control", "cbp",
        {"hidden": "32,32", "rollout_steps": "128", "epochs": "2", "minibatches": "1",
         "cbp.replacement_rate": "0.05", "cbp.maturity_threshold": "10", "lr": "0.001,0.003"},
        {"steps": 384, "bin_size": 128},
    ),
    "ppo-minatar-sequence": (
        "minatar", "backprop",
        {"agent": "ppo", "sequence": "breakout,freeway", "change_every": "96", "channels": "4",
         "hidden": "8", "rollout_steps": "64", "epochs": "2", "minibatches": "2",
         "lr": "0.001,0.003"},
        {"steps": 256, "bin_size": 64},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RL))
def test_an_rl_run_in_a_grid_equals_the_run_alone_bit_for_bit(case):
    benchmark, method, settings, run = RL[case]
    run = {**run, "metrics": (), "metrics_every": 0}
    grid = make_experiment(benchmark, method, settings, seeds=SEEDS, **run)
    ((name, values),) = grid.axes
    program, _ = grid.build()
    assert program.seed_map == "split"
    seeds, swept = grid.runs()
    bins = run["steps"] // run["bin_size"]
    state = program.init(jnp.asarray(seeds), jax.tree_util.tree_map(jnp.asarray, swept))
    state, errors, records = program.chunk(state, jnp.int32(0), bins)
    state, errors, records = jax.device_get(state), np.asarray(errors), np.asarray(records)
    for h, value in enumerate(values):
        alone = make_experiment(
            benchmark, method, {**settings, name: str(value)}, seeds=1, **run
        ).build()[0]
        for k in range(SEEDS):
            s = alone.init(jnp.asarray([k], jnp.int32))
            s, e, v = alone.chunk(s, jnp.int32(0), bins)
            r = h * SEEDS + k
            np.testing.assert_array_equal(errors[r], np.asarray(e)[0], err_msg=f"run {r}")
            np.testing.assert_array_equal(records[r], np.asarray(v)[0], err_msg=f"run {r}")
            mine = dict(_leaves(jax.device_get({"l": s["learner"], "s": s["stream"]})))
            for path, leaf in _leaves({"l": state["learner"], "s": state["stream"]}):
                np.testing.assert_array_equal(
                    leaf[r], mine[path][0], err_msg=f"run {r} {jax.tree_util.keystr(path)}"
                )
    assert not np.array_equal(errors[:SEEDS], errors[SEEDS:])  # the step sizes differ


def test_in_order_sum_adds_in_index_order_whatever_the_batch():
    """A bin's error is the sum of its block totals added in block order (a float32
    running sum, computed here by NumPy's sequential accumulate), the same bits for a row
    alone and for the same row among 300 (a plain reduction under vmap is not: XLA orders
    it by the batch)."""
    from lopkit._seeds import in_order_sum

    x = np.random.default_rng(0).standard_normal((300, 100)).astype(np.float32)
    expected = np.add.accumulate(x, axis=1, dtype=np.float32)[:, -1]
    batched = np.asarray(jax.jit(jax.vmap(in_order_sum))(jnp.asarray(x)))
    np.testing.assert_array_equal(batched, expected)
    alone = jax.jit(in_order_sum)
    for r in (0, 7, 299):
        np.testing.assert_array_equal(np.asarray(alone(jnp.asarray(x[r]))), expected[r])


@pytest.mark.slow
def test_a_large_step_size_axis_equals_its_separate_programs():
    """10 step sizes × 100 seeds as one program of 1,000 runs against 10 programs of 100
    (`make bench`'s axis at 10,000 steps) on two CPU devices, as lopkit runs it on 2 cores
    (500 runs per device): the same per-bin errors, bit for bit. Before the bin's error was
    summed in block order (in_order_sum) 390 of the 1,000 runs differed by up to 4.8e-7
    here, while every parameter was the same bits. (At 1,000 runs on one device the runs
    differ: docs/design.md §2, "Large grids".)"""
    from _device_helpers import on_devices

    code = (
        "import json; from lopkit.bench.axes import axis_vs_separate as a; "
        "print(json.dumps(a(values=10, seeds=100, steps=10_000)))"
    )
    result = on_devices(2, code)
    assert result["max_error_difference"] == 0.0
