"""Every probe of the registry on every benchmark's network, one test per (probe,
benchmark): it runs (or is refused before the run with a message naming it), its values
are finite, its rows are the layers docs/metrics.md says, and its whole-network row
(``layer = ""``) relates to the per-layer rows as documented wherever that relation holds
on any network (ranks: the last hidden layer; the pre-activation shift and the isometry
gap: the mean over layers; unit fractions tested unit by unit: the unit-weighted mean;
weight magnitude: the weight-count-weighted mean; an agent's churn: the sum of its
outputs'). The rows whose ``""`` is not a function of the per-layer rows (dormant and
GraMa fractions, feature norm, effective step size) are checked against their documented
definitions by hand in tests/test_probes_whole_rows.py.

Each benchmark's program is built and run once (smallest settings; two seeds, two bins, a
probe at the end of each) with all its probes, and shared by its tests.
"""

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.engine import _probes

MLP_RUN = {"bin_size": 20, "probe_size": 16}
AGENT = {"hidden": "8,8", "rollout_steps": "64", "epochs": "2", "minibatches": "2"}
MINATAR = {
    "replay_capacity": "256",
    "min_replay": "32",
    "batch": "8",
    "channels": "4",
    "hidden": "8,6",
    "epsilon_decay": "100000",
}
# name: (benchmark, settings, run settings)
BENCHMARKS = {
    "scr": ("scr", {"hidden": "6,4"}, {"bin_size": 100, "probe_size": 64}),
    "permuted": (
        "permuted",
        {"data": "digits", "hidden": "16,8", "examples_per_task": 40},
        {"bin_size": 40, "probe_size": 32},
    ),
    "label_permuted": (
        "label_permuted",
        {"data": "digits", "hidden": "8,6", "change_every": 20, "batch_size": 2},
        MLP_RUN,
    ),
    "random_labels": (
        "random_labels",
        {"data": "digits", "hidden": "8,6", "subset": 30, "steps_per_task": 20, "batch_size": 5},
        MLP_RUN,
    ),
    "changing_targets": (
        "changing_targets",
        {"data": "digits", "hidden": "8,6", "change_every": 20, "subset": 40, "batch_size": 5},
        MLP_RUN,
    ),
    "warmstart": (
        "warmstart",
        {"data": "digits", "hidden": "8,6", "phase1_steps": 20, "phase2_steps": 20},
        MLP_RUN,
    ),
    "binary": (
        "binary",
        {
            "data": "digits",
            "padding": "same",
            "channels": (2, 3, 4),
            "kernels": (3, 3, 3),
            "hidden": (5, 6),
            "epochs_per_task": 2,
            "batch_size": 50,
        },
        {"bin_size": 10, "probe_size": 16},
    ),
    "class_incremental": (
        "class_incremental",
        {
            "data": "digits",
            "initial_classes": 2,
            "class_increment": 4,
            "epochs_per_task": 2,
            "train_per_class": 40,
            "val_per_class": 10,
            "test_per_class": 20,
            "batch_size": 40,
            "widths": "2,3",
            "blocks": "1,1",
        },
        {"bin_size": 4, "probe_size": 16},
    ),
    "minatar_conv": (
        "minatar",
        {**MINATAR, "torso": "conv"},
        {"bin_size": 32, "block_size": 4, "probe_size": 16},
    ),
    "minatar_mlp": (
        "minatar",
        {**MINATAR, "torso": "mlp"},
        {"bin_size": 32, "block_size": 4, "probe_size": 16},
    ),
    "control": ("control", AGENT, {"bin_size": 64, "block_size": 64, "probe_size": 32}),
    "ant": (
        "ant",
        {**AGENT, "threads": "1", "max_episode_steps": "50"},
        {"bin_size": 64, "probe_size": 32},
    ),
    "dmc": ("dmc", {**AGENT, "switch_every": "96"}, {"bin_size": 64, "probe_size": 32}),
}

# What each probe records (metric names): a probe added to the registry must be added here.
METRICS = {
    "dormant_fraction": ("dormant_fraction", "dormant_fraction_0.025"),
    "preactivation_shift": ("preactivation_mean_shift", "preactivation_std_ratio"),
    "ntk": ("ntk_rank", "ntk_condition", "ntk_offdiag_ratio"),
    "adam_state": ("adam_mu_norm", "adam_nu_norm"),
}
METRICS.update({name: (name,) for name in _probes.PROBES if name not in METRICS})
WEIGHT_PROBES = {"weight_magnitude", "isometry_gap", "effective_lr"}  # a row per weight layer
RANKS = {"effective_rank", "srank", "srank_fraction", "approximate_rank", "feature_rank",
         "stable_rank_classic"}  # fmt: skip
UNIT_BY_UNIT = {"dead_fraction", "inactive_fraction", "linear_fraction", "saturated_fraction",
                "duplicate_fraction"}  # fmt: skip
MEAN_OVER_LAYERS = {"preactivation_shift", "isometry_gap"}

# Refused before the run, for what the benchmark lacks: targets with the probe batch (the RL
# benchmarks: observations only), a held-out test set, Adam, a saturating activation, a
# training set that the stream can give (train_accuracy: the relabeled streams only).
NEEDS_TARGETS = {"grad_norm", "ntk", "sharpness", "plasticity_probe", "grama_dormant_fraction"}
_RL = {"train_accuracy", "saturated_fraction", "test_accuracy"} | NEEDS_TARGETS
_SGD = {"adam_state", "saturated_fraction", "train_accuracy"}
REFUSED = {
    "scr": _SGD | {"test_accuracy"},
    "permuted": _SGD,
    "label_permuted": {"adam_state", "saturated_fraction"},
    "random_labels": {"saturated_fraction", "test_accuracy"},  # Adam; labels with no test set
    "changing_targets": {"saturated_fraction", "test_accuracy"},  # relabel shuffle: none
    "warmstart": _SGD,
    "binary": _SGD,
    "class_incremental": _SGD,
    "minatar_conv": _RL,
    "minatar_mlp": _RL,
    "control": _RL,
    "ant": _RL,
    "dmc": _RL,
}
# The expensive probes (NTK, sharpness, the plasticity probe) on a conv net compile for
# minutes: there they are `slow`; MuJoCo's benchmarks need it installed.
EXPENSIVE = {"ntk", "sharpness", "plasticity_probe"}
CONV = {"binary", "class_incremental"}
MUJOCO = {"ant", "dmc"}
AGENTS = {"control", "ant", "dmc"}  # PPO agents: a policy and a value network


def _experiment(name, metrics):
    benchmark, settings, run = BENCHMARKS[name]
    return make_experiment(
        benchmark,
        "backprop",
        settings,
        seeds=2,
        metrics=metrics,
        steps=2 * run["bin_size"],
        metrics_every=run["bin_size"],
        **run,
    )


@functools.cache
def _recorded(name, expensive):
    """(labels, values ``[seeds, bins, rows]``, net) of the benchmark's program with every
    probe it allows (``expensive``: only NTK, sharpness and the plasticity probe, else all
    the others), built and run once for all its tests."""
    names = tuple(
        n for n in _probes.PROBES if n not in REFUSED[name] and (n in EXPENSIVE) == expensive
    )
    program, _ = _experiment(name, names).build()
    state = program.init(jnp.arange(2))
    _, _, values = program.chunk(state, jnp.int32(0), 2)
    values = np.asarray(values)[:, :, len(program.record_names) :]
    assert values.shape[:2] == (2, 2)
    return program.labels, values, program.learner.net


def _cases():
    for name in BENCHMARKS:
        for probe in _probes.PROBES:
            # one worker per benchmark under `--dist loadgroup`: its program is built once
            marks = [pytest.mark.xdist_group(f"probes-{name}")]
            if name in CONV and probe in EXPENSIVE:
                marks.append(pytest.mark.slow)
            yield pytest.param(name, probe, marks=marks, id=f"{name}-{probe}")


def _skip_without_mujoco(name):
    if name in MUJOCO and importlib.util.find_spec("mujoco") is None:
        pytest.skip("MuJoCo is not installed")


def _weight_layers(net):
    """{layer: number of weights} of the leaves with ndim ≥ 2 (docs/metrics.md: weights)."""
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0))
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(shapes):
        if leaf.ndim >= 2:
            keys = [getattr(k, "key", getattr(k, "name", k)) for k in path]
            out["/".join(str(k) for k in keys[:-1])] = int(np.prod(leaf.shape))
    return out


def test_every_probe_of_the_registry_is_known_here():
    assert set(METRICS) == set(_probes.PROBES)


@pytest.mark.parametrize(("name", "probe"), list(_cases()))
def test_a_probe_on_a_benchmarks_network(name, probe):
    _skip_without_mujoco(name)
    if probe in REFUSED[name]:
        with pytest.raises(ConfigError, match=f"metric {probe} needs"):
            _experiment(name, (probe,))
        return
    labels, values, net = _recorded(name, probe in EXPENSIVE)
    hidden = [u.name for u in net.unit_layers]
    for metric in METRICS[probe]:
        rows = {layer: values[:, :, i] for i, (m, layer) in enumerate(labels) if m == metric}
        assert rows, f"{probe} recorded no {metric}"
        for layer, v in rows.items():
            assert np.isfinite(v).all(), f"{metric} {layer!r}: {v}"
        assert "" in rows, f"{metric} has no whole-network row"
        per = [rows[layer] for layer in rows if layer]
        if _probes.PROBES[probe].on_hidden:
            assert list(rows) == [*hidden, ""], metric
        elif probe in WEIGHT_PROBES:
            assert set(rows) == {*_weight_layers(net), ""}, metric
        elif probe == "churn" and name in AGENTS:  # E‖Δpolicy‖² + E‖Δvalue‖²
            assert list(rows) == ["policy", "value", ""]
            np.testing.assert_allclose(rows[""], rows["policy"] + rows["value"], rtol=1e-5)
        else:
            assert list(rows) == [""], metric
        whole = rows[""]
        if probe in RANKS:  # the representation: the last hidden layer
            np.testing.assert_array_equal(whole, per[-1])
        elif probe in MEAN_OVER_LAYERS:
            np.testing.assert_allclose(whole, np.mean(per, axis=0), rtol=1e-5, atol=1e-6)
        elif probe in UNIT_BY_UNIT:  # a per-unit test: pooled = the unit-weighted mean
            units = np.array([u.units for u in net.unit_layers], np.float64)
            mean = np.tensordot(units, np.stack(per), axes=1) / units.sum()
            np.testing.assert_allclose(whole, mean, rtol=1e-5, atol=1e-6)
        elif probe == "weight_magnitude":  # pooled over all weights
            counts = _weight_layers(net)
            weights = np.array([counts[layer] for layer in rows if layer], np.float64)
            mean = np.tensordot(weights, np.stack(per), axes=1) / weights.sum()
            np.testing.assert_allclose(whole, mean, rtol=1e-5)
