"""Every probe of the registry on every benchmark's network: it runs (or is refused before
the run with a clear message), its values are finite, and each metric has its
whole-network row (``layer = ""``). Smallest settings of each benchmark; two bins, a probe
at the end of each."""

import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.engine import _probes

BENCHMARKS = {
    "scr": ({"hidden": "6,4"}, {"bin_size": 100, "probe_size": 64}),
    "permuted": (
        {"data": "digits", "hidden": "16,8", "examples_per_task": 40},
        {"bin_size": 40, "probe_size": 32},
    ),
    "binary": (
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
    "control": (
        {"hidden": "8,8", "rollout_steps": "64", "epochs": "2", "minibatches": "2"},
        {"bin_size": 64, "block_size": 64, "probe_size": 32},
    ),
    "ant": (
        {
            "hidden": "8,8",
            "rollout_steps": "64",
            "epochs": "2",
            "minibatches": "2",
            "threads": "1",
            "max_episode_steps": "50",
        },
        {"bin_size": 64, "probe_size": 32},
    ),
}
# Probes that need what a benchmark lacks are refused before the run (the message says
# what is missing): probe targets (control, ant: observations only), a held-out test set,
# Adam, a saturating activation, a memorized training set (train_accuracy: the relabeled
# streams only).
REFUSED = {
    "scr": {"adam_state", "saturated_fraction", "test_accuracy", "train_accuracy"},
    "permuted": {"adam_state", "saturated_fraction", "train_accuracy"},
    "binary": {"adam_state", "saturated_fraction", "train_accuracy"},
    "class_incremental": {"adam_state", "saturated_fraction", "train_accuracy"},
    "control": {
        "train_accuracy",
        "saturated_fraction",
        "test_accuracy",
        "grad_norm",
        "ntk",
        "sharpness",
        "plasticity_probe",
        "grama_dormant_fraction",
    },  # fmt: skip
    "ant": {
        "train_accuracy",
        "saturated_fraction",
        "test_accuracy",
        "grad_norm",
        "ntk",
        "sharpness",
        "plasticity_probe",
        "grama_dormant_fraction",
    },  # fmt: skip
}


def _experiment(benchmark, metrics):
    settings, run = BENCHMARKS[benchmark]
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


# The conv nets and the agent in MuJoCo take minutes with every probe (compiling the NTK,
# sharpness and plasticity probes for a conv net); the new probes alone run on them in
# seconds (below).
SLOW = {"binary", "class_incremental", "ant"}
NEW_PROBES = (
    "dormant_fraction", "grama_dormant_fraction", "duplicate_fraction", "feature_norm",
    "preactivation_shift", "isometry_gap", "effective_lr", "churn",
)  # fmt: skip


def _skip_without_mujoco(benchmark):
    if benchmark == "ant" and importlib.util.find_spec("mujoco") is None:
        pytest.skip("MuJoCo is not installed")


def _check_rows(program, values, probes):
    values = np.asarray(values)[:, :, len(program.record_names) :]
    labels = program.labels
    assert values.shape == (2, 2, len(labels))
    bad = [labels[i] for i in np.flatnonzero(~np.isfinite(values).all(axis=(0, 1)))]
    assert not bad, f"not finite: {bad}"
    metrics = {m for m, _ in labels}
    whole = {m for m, layer in labels if layer == ""}
    assert metrics == whole, f"no whole-network row: {sorted(metrics - whole)}"
    for name in probes:  # every probe recorded something
        assert any(m.startswith(name.split("_")[0]) for m in metrics), name
    return metrics


@pytest.mark.parametrize(
    "benchmark",
    [pytest.param(b, marks=pytest.mark.slow) if b in SLOW else b for b in BENCHMARKS],
)
def test_every_probe_runs_on_every_benchmarks_network(benchmark):
    _skip_without_mujoco(benchmark)
    refused = set()
    for name in _probes.PROBES:
        try:
            _experiment(benchmark, (name,))
        except ConfigError as error:
            assert name.split("_")[0] in str(error) or "metric" in str(error), error
            refused.add(name)
    assert refused == REFUSED[benchmark]
    names = tuple(n for n in _probes.PROBES if n not in refused)
    program, _ = _experiment(benchmark, names).build()
    state = program.init(jnp.arange(2))
    _, _, values = program.chunk(state, jnp.int32(0), 2)
    metrics = _check_rows(program, values, names)
    new = {
        "dormant_fraction", "dormant_fraction_0.025", "duplicate_fraction", "feature_norm",
        "preactivation_mean_shift", "preactivation_std_ratio", "isometry_gap", "effective_lr",
        "churn",
    }  # fmt: skip
    assert new <= metrics
    assert ("grama_dormant_fraction" in metrics) == ("grama_dormant_fraction" not in refused)


@pytest.mark.parametrize("benchmark", sorted(SLOW))
def test_the_probes_of_issue_27_run_on_the_conv_nets_and_the_ant_agent(benchmark):
    _skip_without_mujoco(benchmark)
    names = tuple(n for n in NEW_PROBES if n not in REFUSED[benchmark])
    program, _ = _experiment(benchmark, names).build()
    state = program.init(jnp.arange(2))
    _, _, values = program.chunk(state, jnp.int32(0), 2)
    _check_rows(program, values, names)
