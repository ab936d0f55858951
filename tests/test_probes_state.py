"""Probes that compare with earlier parameters (churn and effective_lr: the previous
probe's; preactivation_shift: θ₀) keep those in the run's state: a run killed and resumed
records the same rows, bit for bit, as the run uninterrupted, and a run's values are the
same alone and inside a batch of runs (probes are computed one run at a time)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from lopkit._experiment import make_experiment, run_experiment
from lopkit.metrics import churn, effective_lr_per_layer

STATEFUL = ("churn", "effective_lr", "preactivation_shift")
RUN = {"steps": 2_000, "bin_size": 250, "metrics_every": 500, "probe_size": 64}


def test_a_killed_and_resumed_run_records_the_same_probe_rows(tmp_path):
    e = make_experiment("scr", "backprop", seeds=2, metrics=STATEFUL, chunk_bins=2, **RUN)
    run_experiment(e, tmp_path / "full", progress=False)
    # killed after its first chunk (one probe taken), then resumed from the checkpoint
    run_experiment(e, tmp_path / "cut", progress=False, stop_after_chunks=1)
    assert not (tmp_path / "cut" / "metrics.parquet").exists()
    run_experiment(e, tmp_path / "cut", resume=True, progress=False)
    a, b = (pd.read_parquet(tmp_path / d / "metrics.parquet") for d in ("full", "cut"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    probes = a[a.metric.isin(["churn", "effective_lr", "preactivation_std_ratio"])]
    assert set(probes.step) == {500, 1000, 1500, 2000} and np.isfinite(probes.value).all()


def test_churn_and_effective_lr_compare_with_the_previous_probe():
    e = make_experiment("scr", "backprop", seeds=1, metrics=("churn", "effective_lr"), **RUN)
    program, _ = e.build()
    state = program.init(jnp.arange(1))
    state, _, first = program.chunk(state, jnp.int32(0), 2)  # a probe at step 500
    at_500 = jax.tree_util.tree_map(lambda a: a[0], state["learner"]["params"])
    np.testing.assert_array_equal(  # the state now holds the parameters of that probe
        jax.tree_util.tree_leaves(state["params_prev"])[0][0], jax.tree_util.tree_leaves(at_500)[0]
    )
    state, _, second = program.chunk(state, jnp.int32(2), 2)  # the next, at step 1000
    one = jax.tree_util.tree_map(lambda a: a[0], state)
    key = jax.random.fold_in(one["keys"]["probe"], 3)
    x, _ = program.stream.probe(one["stream"], jax.random.split(key)[0], RUN["probe_size"])
    net, params = program.learner.net, one["learner"]["params"]
    got = dict(zip(program.labels, np.asarray(second)[0, 1], strict=True))
    want = churn(net.apply(params, x)[0], net.apply(at_500, x)[0])
    np.testing.assert_allclose(got[("churn", "")], want, rtol=1e-5)
    lr = effective_lr_per_layer(params, at_500)
    np.testing.assert_allclose(got[("effective_lr", "hidden_0")], lr["hidden_0"], rtol=1e-5)
    np.testing.assert_allclose(got[("effective_lr", "")], lr[""], rtol=1e-5)
    assert got[("churn", "")] > 0 and np.all(np.isnan(np.asarray(second)[0, 0]))


def test_stateful_probes_of_a_run_are_the_same_alone_and_in_a_batch():
    metrics = (*STATEFUL, "grama_dormant_fraction", "duplicate_fraction", "isometry_gap")
    run = {**RUN, "steps": 1_000}
    settings = {"lr": "0.003,0.01", "cbp.maturity_threshold": 20}
    grid = make_experiment("scr", "cbp", settings, seeds=2, metrics=metrics, **run)
    program, _ = grid.build()
    seeds, values = grid.runs()
    state = program.init(jnp.asarray(seeds), jax.tree_util.tree_map(jnp.asarray, values))
    _, _, probes = program.chunk(state, jnp.int32(0), 4)
    probes = np.asarray(probes)
    assert np.isfinite(probes[:, 1::2]).all()  # probes at steps 500 and 1000
    alone = make_experiment(
        "scr", "cbp", {**settings, "lr": "0.01"}, seeds=1, metrics=metrics, **run
    )
    program1 = alone.build()[0]
    for k in range(2):
        s = program1.init(jnp.asarray([k], jnp.int32))
        _, _, p = program1.chunk(s, jnp.int32(0), 4)
        np.testing.assert_array_equal(probes[2 + k], np.asarray(p)[0])
