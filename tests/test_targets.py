"""changing_targets (Sokar et al. 2023, Fig. 3): the two arms, their labels, the figure in
one `lopkit plot`, and the source's direction on the quick preset (slow)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _quick_presets import run_quick_preset
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment, run_experiment
from lopkit.cli import main as cli_main

SMALL = {"data": "digits", "hidden": "8", "subset": 40, "change_every": 10, "batch_size": 4}


def _stream(targets, **extra):
    e = make_experiment("changing_targets", "backprop", {**SMALL, "targets": targets, **extra})
    return e.benchmark.build(e.config).stream


def _labels(stream, steps=30):
    state = stream.init(jax.random.PRNGKey(0))
    state, block = stream.block(state, jax.random.PRNGKey(1), jnp.int32(0), steps)
    x = np.rint(np.asarray(block.x) * 255).astype(np.uint8)
    rows = {r.tobytes(): i for i, r in enumerate(stream.data["x_train"])}
    ids = np.array([rows[r.tobytes()] for r in x.reshape(-1, x.shape[-1])]).reshape(x.shape[:-1])
    return np.asarray(block.y), stream.data["y_train"][ids], np.asarray(block.task)


def test_fixed_targets_are_the_true_labels_in_one_task():
    stream = _stream("fixed")
    y, true, task = _labels(stream)
    np.testing.assert_array_equal(y, true)
    assert not task.any() and stream.steps_per_task is None and stream.has_test_set


@pytest.mark.parametrize("relabel", ["shuffle", "random"])
def test_changing_targets_start_true_and_change_every_period(relabel):
    y, true, task = _labels(_stream("changing", relabel=relabel))
    np.testing.assert_array_equal(task, np.arange(30) // 10)
    np.testing.assert_array_equal(y[task == 0], true[task == 0])  # the same start as fixed
    for t in (1, 2):
        assert (y[task == t] != true[task == t]).mean() > 0.5  # 10 classes: most change


def test_test_accuracy_only_where_test_labels_are_defined():
    make_experiment("changing_targets", "backprop", {**SMALL, "targets": "fixed"},
                    metrics=("test_accuracy",)).build()  # fmt: skip
    with pytest.raises(ConfigError, match="test_accuracy needs"):
        make_experiment("changing_targets", "backprop", SMALL, metrics=("test",)).build()
    with pytest.raises(ConfigError, match="targets must be one of fixed, changing"):
        make_experiment("changing_targets", "backprop", {**SMALL, "targets": "drifting"})
    with pytest.raises(ConfigError, match="takes one value per run"):
        make_experiment("changing_targets", "backprop", {**SMALL, "targets": "fixed,changing"})


def test_both_arms_are_one_plot_away(tmp_path):
    for targets in ("fixed", "changing"):
        e = make_experiment("changing_targets", "backprop", {**SMALL, "targets": targets},
                            seeds=2, steps=40)  # fmt: skip
        run_experiment(e, tmp_path / targets, progress=False)
    out = tmp_path / "dormant.png"
    argv = ["plot", str(tmp_path / "fixed"), str(tmp_path / "changing"), "--metric", "dormant"]
    argv += ["--label-key", "benchmark_config.targets", "--x", "step", "--out", str(out)]
    assert cli_main(argv) == 0
    assert out.stat().st_size > 0


@pytest.mark.slow
def test_quick_preset_changing_targets_make_more_dormant_units():
    """Sokar et al. 2023, Fig. 3: with targets that change, the fraction of dormant units
    grows over training; with fixed targets it does not. The quick preset shortened to 6
    periods (5 seeds, 20 periods in docs/benchmarks.md: 0.61 against 0.12)."""
    dormant = {}
    for targets in ("fixed", "changing"):
        program, _, probes = run_quick_preset(
            "changing_targets", "backprop", targets=targets, steps=3_000
        )
        dormant[targets] = probes[:, -1, program.labels.index(("dormant_fraction", ""))]
    se = np.hypot(*(v.std(ddof=1) for v in dormant.values())) / np.sqrt(10)
    gap = dormant["changing"].mean() - dormant["fixed"].mean()
    assert gap > 5 * se, (dormant, se)
