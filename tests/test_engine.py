"""The engine: seeds are independent runs, resume equals uninterrupted, divergence is masked."""

import subprocess

import jax.numpy as jnp
import numpy as np
import pytest

from _device_helpers import on_devices, on_one_and_two_devices
from lopkit._experiment import make_experiment, run_experiment
from lopkit.results import load

QUICK = {"steps": 2_000, "bin_size": 500, "metrics_every": 1_000, "probe_size": 64}


def _program(method, seeds, **settings):
    e = make_experiment("scr", method, settings, seeds=seeds, **QUICK)
    return e.build()[0]


def _chunk(program, seed_ids):
    state = program.init(jnp.asarray(seed_ids, jnp.int32))
    state, errors, probes = program.chunk(state, jnp.int32(0), 4)
    return state, np.asarray(errors), np.asarray(probes)


@pytest.mark.parametrize("method", ["backprop", "cbp", "l2", "shrink_perturb", "cbp+l2"])
def test_batched_seeds_equal_each_seed_alone(method):
    settings = (
        {"cbp.replacement_rate": 0.01, "cbp.maturity_threshold": 20} if "cbp" in method else {}
    )
    state, errors, probes = _chunk(_program(method, 8, **settings), range(8))
    alone = _program(method, 1, **settings)  # one compiled program; the seed id is an input
    for k in range(8):
        s1, e1, p1 = _chunk(alone, [k])
        np.testing.assert_array_equal(errors[k], e1[0])
        np.testing.assert_array_equal(probes[k], p1[0])
        w = state["learner"]["params"]["hidden_0"]["w"][k]
        w1 = s1["learner"]["params"]["hidden_0"]["w"][0]
        np.testing.assert_array_equal(w, w1)


_SPLIT_RUNS = """
import json, sys, jax, jax.numpy as jnp, numpy as np
import lopkit
from lopkit._experiment import make_experiment

settings = {"cbp.replacement_rate": 0.01, "cbp.maturity_threshold": 20}
program = make_experiment("scr", "cbp+l2", settings, seeds=4, **QUICK).build()[0]
state = program.init(jnp.arange(4, dtype=jnp.int32))
w = state["learner"]["params"]["hidden_0"]["w"]
shards = [w.sharding.shard_shape(w.shape)[0], len(w.sharding.device_set)]
state, errors, probes = program.chunk(state, jnp.int32(0), 4)
leaves = jax.tree_util.tree_leaves((state, errors, probes))
np.savez(sys.argv[1], *[np.asarray(x) for x in leaves])
three = program.init(jnp.arange(3, dtype=jnp.int32))["learner"]["params"]["hidden_0"]["w"]
print(json.dumps({"devices": jax.local_device_count(), "shards": shards,
                  "result_devices": len(errors.sharding.device_set),
                  "three_runs_devices": len(three.sharding.device_set)}))
"""


def test_runs_split_across_devices_compute_what_one_device_computes(tmp_path):
    """With 2 CPU devices (``LOPKIT_CPU_DEVICES=2``) init splits 4 runs 2 + 2 across them and
    each device runs its own (CBP's any-seed branch included); the results equal those of
    one device. Each in its own process: the device count is set when JAX starts."""
    code = f"QUICK = {QUICK!r}\n" + _SPLIT_RUNS
    reports, results = on_one_and_two_devices(code, tmp_path)
    assert reports[2]["devices"] == 2 and reports[2]["shards"] == [2, 2]
    assert reports[2]["result_devices"] == 2 and reports[2]["three_runs_devices"] == 1
    assert reports[1]["shards"] == [4, 1]
    for a, b in zip(results[1].values(), results[2].values(), strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit (docs/design.md §2)


_PROBE_ON_TWO_DEVICES = """
import json, jax, jax.numpy as jnp
from lopkit._experiment import make_experiment
e = make_experiment("scr", "backprop", seeds=800, steps=1_000, bin_size=1_000,
                    metrics=("effective_rank",), metrics_every=1_000)
program, _ = e.build()
state = program.init(jnp.asarray(e.seed_ids))
_, errors, values = program.chunk(state, jnp.int32(0), 1)
print(json.dumps({"devices": jax.device_count(), "finite": bool(jnp.isfinite(values).all())}))
"""


def test_a_probe_with_an_eigendecomposition_finishes_on_two_devices():
    """800 runs on 2 CPU devices with the effective-rank probe: jaxlib's batched LAPACK
    eigh, split into tasks on XLA's 2-thread pool, hung this program for ever (both pool
    threads waiting on tasks no thread was free to run); ``metrics._linalg.eigh`` decomposes
    one matrix per call. The timeout turns a hang back into a failure."""
    try:
        report = on_devices(2, _PROBE_ON_TWO_DEVICES, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("the 2-device program with an effective-rank probe hung (> 240 s)")
    assert report == {"devices": 2, "finite": True}


def test_seeds_differ_in_data_and_init():
    state, errors, _ = _chunk(_program("backprop", 2), range(2))
    assert not np.allclose(state["stream"]["target"]["w"][0], state["stream"]["target"]["w"][1])
    assert not np.allclose(errors[0], errors[1])


def test_chunking_does_not_change_results(tmp_path):
    a = make_experiment("scr", "cbp", seeds=2, chunk_bins=1, **QUICK)
    b = make_experiment("scr", "cbp", seeds=2, chunk_bins=4, **QUICK)
    run_experiment(a, tmp_path / "a", progress=False)
    run_experiment(b, tmp_path / "b", progress=False)
    da, db = load(tmp_path / "a"), load(tmp_path / "b")
    np.testing.assert_allclose(da["value"].to_numpy(), db["value"].to_numpy(), rtol=1e-6)


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    e = make_experiment("scr", "cbp+shrink_perturb", seeds=3, chunk_bins=1, **QUICK)
    run_experiment(e, tmp_path / "full", progress=False)
    partial = run_experiment(e, tmp_path / "cut", progress=False, stop_after_chunks=2)
    assert not partial["finished"]
    assert not (tmp_path / "cut" / "metrics.parquet").exists()
    assert len(load(tmp_path / "cut")["step"].unique()) == 2  # parts of the first 2 chunks
    # A part written after the last checkpoint (as by a crash mid-chunk) is dropped on resume.
    resumed = run_experiment(e, tmp_path / "cut", resume=True, progress=False)
    assert resumed["finished"] and resumed["bins_run"] == 2
    full, cut = load(tmp_path / "full"), load(tmp_path / "cut")
    assert len(full) == len(cut)
    np.testing.assert_array_equal(full["step"], cut["step"])
    np.testing.assert_allclose(full["value"].to_numpy(), cut["value"].to_numpy(), rtol=1e-6)


def test_divergence_is_recorded_masked_and_does_not_touch_other_seeds():
    e = make_experiment("scr", "backprop", seeds=2, **QUICK)
    program, _ = e.build()
    clean = program.init(jnp.arange(2))
    poisoned = program.init(jnp.arange(2))  # chunk() donates its input: no shared buffers
    w = poisoned["learner"]["params"]["output"]["w"]
    poisoned["learner"]["params"]["output"]["w"] = w.at[0].set(jnp.nan)
    s_clean, e_clean, _ = program.chunk(clean, jnp.int32(0), 2)
    s_bad, e_bad, _ = program.chunk(poisoned, jnp.int32(0), 2)
    assert int(s_bad["diverged_at"][0]) == 0 and int(s_bad["diverged_at"][1]) == -1
    assert int(s_clean["diverged_at"][0]) == -1
    np.testing.assert_array_equal(np.asarray(e_bad[1]), np.asarray(e_clean[1]))


def test_diverged_rows_in_the_table(tmp_path):
    # A huge step size makes every seed diverge; each is recorded once and masked after.
    e = make_experiment("scr", "backprop", {"lr": "50", "hidden": "50"}, seeds=3, **QUICK)
    run_experiment(e, tmp_path / "div", progress=False)
    df = load(tmp_path / "div")
    diverged = df[df.metric == "diverged"]
    assert sorted(diverged.seed) == [0, 1, 2]
    for _, row in diverged.iterrows():
        later = df[(df.metric == "mse") & (df.seed == row.seed) & (df.step > row.step)]
        assert later["value"].isna().all()


def test_sequential_seed_map_equals_vmap():
    import dataclasses

    e = make_experiment("scr", "cbp", {"cbp.replacement_rate": "0.01"}, seeds=3, **QUICK)
    program, _ = e.build()
    mapped = dataclasses.replace(program, seed_map="map")
    _, e1, p1 = program.chunk(program.init(jnp.arange(3)), jnp.int32(0), 4)
    _, e2, p2 = mapped.chunk(mapped.init(jnp.arange(3)), jnp.int32(0), 4)
    np.testing.assert_allclose(e1, e2, rtol=2e-5)
    np.testing.assert_allclose(p1, p2, rtol=2e-5, atol=1e-6)


@pytest.mark.slow
def test_ctrl_c_then_resume_gives_the_uninterrupted_results(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    args = ["run", "scr", "--method", "cbp", "--seeds", "2", "--steps", "400000",
            "--bin-size", "1000", "--metrics-every", "10000", "--set", "chunk_bins=10",
            "--no-progress"]  # fmt: skip
    cmd = [sys.executable, "-m", "lopkit.cli", *args]
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "cut")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    checkpoint = tmp_path / "cut" / "checkpoint" / "state.npz"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert proc.returncode == 130 and "lopkit resume" in err and "Traceback" not in err
    assert not (tmp_path / "cut" / "metrics.parquet").exists()
    done = subprocess.run([*cmd, "--out", str(tmp_path / "cut"), "--resume"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stderr
    full = subprocess.run([*cmd, "--out", str(tmp_path / "full")], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert full.returncode == 0, full.stderr
    a, b = load(tmp_path / "full"), load(tmp_path / "cut")
    assert len(a) == len(b)
    np.testing.assert_array_equal(a["step"], b["step"])
    np.testing.assert_allclose(a["value"].to_numpy(), b["value"].to_numpy(), rtol=1e-6)
