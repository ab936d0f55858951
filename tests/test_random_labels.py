"""random_labels: the train_accuracy probe (the sources' measure) by hand, presets, and the
sources' direction on the quick preset (slow)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _quick_presets import run_quick_preset
from lopkit import _config
from lopkit._errors import ConfigError
from lopkit._experiment import RunConfig, make_experiment, split_settings
from lopkit.benchmarks import get_benchmark
from lopkit.experiments import available_presets, load_preset, preset_settings
from lopkit.methods import parse_method, remedy_configs

SMALL = {"data": "digits", "hidden": "8", "subset": 30, "steps_per_task": 10,
         "batch_size": 5, "lr": 0.01}  # fmt: skip


def test_train_accuracy_is_the_accuracy_on_the_subset_under_the_tasks_labels():
    e = make_experiment("random_labels", "backprop", SMALL, seeds=1, steps=20,
                        metrics=("train_accuracy",))  # fmt: skip
    program, _ = e.build()
    state = program.init(jnp.asarray([0], jnp.int32))
    state, _, probes = program.chunk(state, jnp.int32(0), 2)
    stream = e.benchmark.build(e.config).stream.bind(program.constants)
    one = jax.tree_util.tree_map(lambda a: a[0], state)
    x, labels = stream.train_set(one["stream"])
    assert x.shape == (30, 64) and labels.shape == (30,)
    net = program.learner.net
    out = net.apply(one["learner"]["params"], x)[0]
    by_hand = np.mean(np.argmax(np.asarray(out), -1) == np.asarray(labels))
    assert np.asarray(probes)[0, 1, 0] == pytest.approx(by_hand, abs=1e-6)  # bin 2's end


def test_run_defaults_one_bin_and_one_snapshot_per_task():
    e = make_experiment("random_labels", "backprop", SMALL)
    assert (e.run.bin_size, e.run.metrics_every, e.run.steps) == (10, 10, 100)
    assert e.run.metrics[0] == "train_accuracy"
    assert e.config.optimizer == "adam"  # the sources train with Adam


def test_train_accuracy_is_refused_where_there_is_no_training_set():
    with pytest.raises(ConfigError, match="train_accuracy needs"):
        make_experiment("scr", "backprop", metrics=("train_accuracy",)).build()
    with pytest.raises(ConfigError, match="test_accuracy needs"):
        make_experiment("random_labels", "backprop", SMALL, metrics=("test",)).build()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="subset .*exceeds the 1,438 training examples"):
        make_experiment("random_labels", "backprop", {**SMALL, "subset": 5000})
    with pytest.raises(ConfigError, match="steps_per_task"):
        make_experiment("random_labels", "backprop", {**SMALL, "steps_per_task": 0})


def _validate_without_data(benchmark, name, method):
    bench = get_benchmark(benchmark)
    settings = preset_settings(load_preset(benchmark, name), parse_method(method))
    fields = {f.name for f in dataclasses.fields(bench.config)}
    b, remedies, run = split_settings(settings, fields)
    config = _config.build(bench.config, b)
    remedy_configs(parse_method(method), remedies, bench.remedy_defaults)
    return config, _config.build(RunConfig, {**bench.run_defaults_for(config), **run})


@pytest.mark.parametrize("benchmark", ["label_permuted", "random_labels", "changing_targets"])
def test_every_preset_is_valid_and_there_is_a_quick_and_a_paper_one(benchmark):
    assert {"quick", "paper"} <= set(available_presets(benchmark))
    for name in available_presets(benchmark):
        for method in ("backprop", "l2_init", "shrink_perturb", "redo"):
            _validate_without_data(benchmark, name, method)


def test_paper_presets_are_the_sources_protocols():
    c, run = _validate_without_data("label_permuted", "paper", "backprop")
    assert (c.data, c.hidden, c.change_every, c.batch_size) == ("emnist", (300, 150), 2500, 1)
    assert run.steps == 1_000_000 and run.seeds == 20 and run.bin_size == 2500
    c, run = _validate_without_data("random_labels", "paper", "backprop")
    assert (c.data, c.subset, c.batch_size, c.optimizer) == ("mnist", 1200, 16, "adam")
    assert run.bin_size == run.metrics_every == c.steps_per_task
    c, run = _validate_without_data("changing_targets", "paper", "backprop")
    assert (c.data, c.subset, c.targets) == ("cifar10", 10_000, "changing")


@pytest.mark.slow
def test_quick_preset_memorization_accuracy_falls_over_tasks():
    """Lyle et al. 2023 / Kumar et al. 2024: the training accuracy a network reaches on a
    fresh random labeling within the same budget falls as tasks go by. The quick preset
    shortened to 10 tasks (5 seeds, 20 tasks in docs/benchmarks.md: 0.96 → 0.12)."""
    program, _, probes = run_quick_preset("random_labels", "backprop", steps=10_000)
    i = program.labels.index(("train_accuracy", ""))
    acc = probes[:, :, i]  # [seeds, tasks]: at each task's end
    early, late = acc[:, :3].mean(1), acc[:, -2:].mean(1)
    se = np.hypot(early.std(ddof=1), late.std(ddof=1)) / np.sqrt(acc.shape[0])
    assert early.mean() > 0.9, acc.mean(0)
    assert early.mean() - late.mean() > 5 * se, (acc.mean(0), se)


def test_a_run_in_a_step_size_grid_equals_the_run_alone_bit_for_bit():
    run = {"steps": 40, "metrics": ("train_accuracy", "dead")}
    grid = make_experiment("random_labels", "backprop", {**SMALL, "lr": "0.001,0.01"}, seeds=2,
                           **run)  # fmt: skip
    program, _ = grid.build()
    seeds, values = grid.runs()
    state = program.init(jnp.asarray(seeds), jax.tree_util.tree_map(jnp.asarray, values))
    _, errors, probes = program.chunk(state, jnp.int32(0), 4)
    errors, probes = np.asarray(errors), np.asarray(probes)
    assert not np.array_equal(errors[:2], errors[2:])  # the two step sizes differ
    for h, lr in enumerate(("0.001", "0.01")):
        alone = make_experiment("random_labels", "backprop", {**SMALL, "lr": lr}, seeds=1, **run)
        program1 = alone.build()[0]
        for k in range(2):
            s = program1.init(jnp.asarray([k], jnp.int32))
            _, e, p = program1.chunk(s, jnp.int32(0), 4)
            np.testing.assert_array_equal(errors[2 * h + k], np.asarray(e)[0])
            np.testing.assert_array_equal(probes[2 * h + k], np.asarray(p)[0])
