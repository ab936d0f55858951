"""Probes recorded in runs: the right rows, the same values as the plain functions, and the
paper's direction on slowly-changing regression."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit import metrics
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment, run_experiment
from lopkit.results import early_late, load

QUICK = {"steps": 2_000, "bin_size": 500, "metrics_every": 1_000, "probe_size": 128}
ALL = (
    "dead",
    "dormant",
    "inactive",
    "linear",
    "erank",
    "srank",
    "arank",
    "frank",
    "classic_rank",
    "weights",
    "param_norm",
    "distance",
    "grad_norm",
    "ntk",
    "sharpness",
    "plasticity",
)


def test_every_probe_is_recorded_per_layer_and_whole_network(tmp_path):
    e = make_experiment("scr", "backprop", {"hidden": "6,4"}, seeds=2, metrics=ALL, **QUICK)
    run_experiment(e, tmp_path / "r", progress=False)
    df = load(tmp_path / "r")
    assert set(df.step[df.metric == "dead_fraction"]) == {1000, 2000}
    for m in ("dead_fraction", "dormant_fraction", "effective_rank", "srank", "feature_rank"):
        assert set(df.layer[df.metric == m]) == {"", "hidden_0", "hidden_1"}
    assert set(df.layer[df.metric == "weight_magnitude"]) == {"", "hidden_0", "hidden_1", "output"}
    for m in (
        "param_norm",
        "distance_from_init",
        "grad_norm",
        "ntk_rank",
        "ntk_condition",
        "ntk_offdiag_ratio",
        "sharpness",
        "plasticity_probe",
    ):
        rows = df[df.metric == m]
        assert len(rows) == 4 and set(rows.layer) == {""} and np.isfinite(rows.value).all(), m
    # pooled dead fraction is the unit-weighted mean of the layers' fractions
    d = df[df.metric == "dead_fraction"].pivot_table(
        index=["seed", "step"], columns="layer", values="value"
    )
    np.testing.assert_allclose(d[""], (6 * d["hidden_0"] + 4 * d["hidden_1"]) / 10, atol=1e-6)


def test_recorded_values_equal_the_plain_functions():
    e = make_experiment(
        "scr", "backprop", seeds=2, metrics=("dead", "erank", "weights", "distance"), **QUICK
    )
    program, _ = e.build()
    state = program.init(jnp.arange(2))
    state, _, probes = program.chunk(state, jnp.int32(0), 2)  # snapshot at step 1000
    labels = program.labels
    for k in range(2):
        one = jax.tree_util.tree_map(lambda leaf, k=k: leaf[k], state)
        key = jax.random.fold_in(one["keys"]["probe"], 1)
        k_batch, _ = jax.random.split(key)
        x, _ = program.stream.probe(one["stream"], k_batch, 128)
        _, trace = program.learner.net.apply(one["learner"]["params"], x)
        got = dict(zip(labels, np.asarray(probes[k, 1]), strict=True))
        np.testing.assert_allclose(
            got[("dead_fraction", "hidden_0")], metrics.dead_fraction(trace.hidden[0]), atol=1e-6
        )
        np.testing.assert_allclose(
            got[("effective_rank", "hidden_0")], metrics.effective_rank(trace.hidden[0]), rtol=1e-5
        )
        np.testing.assert_allclose(
            got[("weight_magnitude", "")],
            metrics.weight_magnitude(one["learner"]["params"]),
            rtol=1e-6,
        )
        d0 = metrics.distance_from_init(one["learner"]["params"], one["params0"])
        np.testing.assert_allclose(got[("distance_from_init", "")], d0, rtol=1e-5)
        assert d0 > 0
    assert np.isnan(np.asarray(probes[:, 0])).all()  # no snapshot at step 500


def test_probes_that_do_not_apply_are_refused():
    with pytest.raises(ConfigError, match="Adam"):
        make_experiment("scr", "backprop", metrics=("adam",), **QUICK)
    with pytest.raises(ConfigError, match="saturating activation"):
        make_experiment("scr", "backprop", metrics=("saturated",), **QUICK)
    make_experiment("scr", "backprop", {"activation": "tanh"}, metrics=("saturated",), **QUICK)


@pytest.mark.slow
def test_backprop_relu_loses_units_and_rank_over_the_run(tmp_path):
    # The paper's direction (Dohare et al. 2024, Fig. 2 / Extended Data): on slowly-changing
    # regression with ReLU and SGD 0.01, the dead-unit fraction rises and the effective
    # rank of the hidden features falls over the run, averaged over seeds.
    e = make_experiment("scr", "backprop", seeds=10, steps=300_000, metrics=("dead", "erank"))
    run_experiment(e, tmp_path / "bp", progress=False)
    df = load(tmp_path / "bp")
    dead = early_late(df, "dead_fraction", fraction=0.2).iloc[0]
    rank = early_late(df, "effective_rank", layer="hidden_0", fraction=0.2).iloc[0]
    assert dead.late - dead.early > 2 * np.hypot(dead.late_se, dead.early_se)
    assert rank.early - rank.late > 2 * np.hypot(rank.late_se, rank.early_se)
