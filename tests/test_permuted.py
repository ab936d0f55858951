"""Permuted inputs: per-seed permutations, task boundaries, one pass per task, presets."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from _quick_presets import run_quick_preset
from lopkit import _config
from lopkit._errors import ConfigError
from lopkit._experiment import RunConfig, make_experiment, run_experiment, split_settings
from lopkit.benchmarks import get_benchmark
from lopkit.cli import main as cli_main
from lopkit.experiments import available_presets, load_preset, preset_settings
from lopkit.methods import parse_method, remedy_configs
from lopkit.results import load, read_config
from lopkit.streams._labeled import LabeledArrays
from lopkit.streams._permuted import PermutedInputs, PermutedStreamConfig

TINY = {"data": "digits", "hidden": "16", "examples_per_task": 40, "lr": 0.01}


def synthetic(n=30, side=4, classes=3, seed=0):
    """Distinct random rows, so a row identifies its example."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, side * side), dtype=np.uint8)
    return LabeledArrays(
        name="synthetic",
        x_train=x,
        y_train=(np.arange(n) % classes).astype(np.int32),
        x_test=x[:5],
        y_test=np.zeros(5, np.int32),
        image_shape=(side, side, 1),
        num_classes=classes,
    )


def stream_of(arrays, **config):
    return PermutedInputs(PermutedStreamConfig(**config), arrays=arrays)


def example_ids(arrays, x, perm):
    """The training indices of permuted float images x [m, D] under perm [D]."""
    raw = np.rint(np.asarray(x) * 255).astype(np.uint8)[:, np.argsort(perm)]
    lookup = {row.tobytes(): i for i, row in enumerate(arrays.x_train)}
    return np.array([lookup[row.tobytes()] for row in raw])


def test_each_task_permutation_is_a_permutation_and_seeds_differ():
    s = stream_of(synthetic(), examples_per_task=10)
    a, b = s.init(jax.random.PRNGKey(0)), s.init(jax.random.PRNGKey(1))
    perms = [np.asarray(s.permutation(a, jnp.int32(t))) for t in range(5)]
    for p in perms:
        np.testing.assert_array_equal(np.sort(p), np.arange(16))
    assert len({p.tobytes() for p in perms}) == 5  # a new permutation per task
    assert not np.array_equal(perms[0], np.asarray(s.permutation(b, jnp.int32(0))))


def test_task_boundaries_and_one_pass_per_task_across_straddling_blocks():
    arrays = synthetic(n=30)
    s = stream_of(arrays, examples_per_task=20, batch_size=2)  # 10 steps per task
    state = s.init(jax.random.PRNGKey(3))
    ids, tasks = [], []
    for start in range(0, 30, 7):  # blocks of 7 steps straddle the boundaries at 10, 20
        n = min(7, 30 - start)
        state, block = s.block(state, jax.random.PRNGKey(99), jnp.int32(start), n)
        assert block.x.shape == (n, 2, 16) and block.y.shape == (n, 2)
        assert 0.0 <= float(block.x.min()) and float(block.x.max()) <= 1.0
        for i in range(n):
            t = (start + i) // 10
            perm = np.asarray(s.permutation(state, jnp.int32(t)))
            step_ids = example_ids(arrays, block.x[i], perm)
            np.testing.assert_array_equal(block.y[i], arrays.y_train[step_ids])
            ids.append(step_ids)
        tasks.append(np.asarray(block.task))
    np.testing.assert_array_equal(np.concatenate(tasks), np.arange(30) // 10)
    ids = np.concatenate(ids).reshape(3, 20)
    for t in range(3):  # 20 distinct examples of 30: one pass, without replacement
        assert len(set(ids[t])) == 20
        order = np.asarray(s.order(state, jnp.int32(t)))
        np.testing.assert_array_equal(ids[t], order[:20])
    assert int(state["step"]) == 30


def test_blocks_longer_than_a_task_and_short_ones_after_them_see_each_tasks_order():
    """The stream keeps the next step's task order in its state; a block spanning more than
    two tasks takes the other path. Mixed cuts must still give order(t)[:20] per task."""
    arrays = synthetic(n=30)
    s = stream_of(arrays, examples_per_task=20, batch_size=2)  # 10 steps per task
    state = s.init(jax.random.PRNGKey(5))
    ids, start = [], 0
    for n in (25, 3, 7, 12, 3):  # 25 and 12 span 3 tasks; the others at most 2
        state, block = s.block(state, jax.random.PRNGKey(0), jnp.int32(start), n)
        for i in range(n):
            perm = np.asarray(s.permutation(state, jnp.int32((start + i) // 10)))
            ids.append(example_ids(arrays, block.x[i], perm))
        start += n
        t = start // 10
        np.testing.assert_array_equal(state["order"], s.order(state, jnp.int32(t)))
    ids = np.concatenate(ids).reshape(5, 20)
    for t in range(5):
        np.testing.assert_array_equal(ids[t], np.asarray(s.order(state, jnp.int32(t)))[:20])


def test_more_examples_than_the_training_set_makes_several_passes():
    arrays = synthetic(n=30)
    s = stream_of(arrays, examples_per_task=70)
    order = np.asarray(s.order(s.init(jax.random.PRNGKey(0)), jnp.int32(2)))
    assert order.shape == (90,)
    for p in range(3):
        np.testing.assert_array_equal(np.sort(order[30 * p : 30 * (p + 1)]), np.arange(30))


def test_probe_is_the_new_task_and_evaluate_the_task_just_trained():
    arrays = synthetic(n=30)
    s = stream_of(arrays, examples_per_task=10)
    state = s.init(jax.random.PRNGKey(0))
    state, _ = s.block(state, jax.random.PRNGKey(1), jnp.int32(0), 10)  # task 0 done
    x, y = s.probe(state, jax.random.PRNGKey(2), 25)
    assert x.shape == (25, 16) and y.shape == (25,) and y.dtype == jnp.int32
    ids = example_ids(arrays, x, np.asarray(s.permutation(state, jnp.int32(1))))
    assert len(set(ids)) == 25  # without replacement
    np.testing.assert_array_equal(y, arrays.y_train[ids])
    x_test, labels = s.evaluate(state)
    ids = example_ids(arrays, x_test, np.asarray(s.permutation(state, jnp.int32(0))))
    np.testing.assert_array_equal(ids, np.arange(5))  # x_test is x_train[:5]
    np.testing.assert_array_equal(labels, arrays.y_test)


def test_config_checks_and_clear_data_errors(tmp_path):
    with pytest.raises(ConfigError, match="multiple of batch_size"):
        make_experiment("permuted", "backprop", {**TINY, "batch_size": 3})
    with pytest.raises(ConfigError, match="data must be one of"):
        make_experiment("permuted", "backprop", {"data": "cifar100"})
    from lopkit.data import DataError

    with pytest.raises(DataError, match="how to get it"):
        make_experiment("permuted", "backprop", {"data": "mnist", "data_dir": str(tmp_path)})


def test_run_defaults_make_one_bin_per_task():
    e = make_experiment("permuted", "backprop", {**TINY, "examples_per_task": 60, "batch_size": 2})
    assert (e.run.bin_size, e.run.metrics_every, e.run.steps) == (30, 30, 300)
    assert make_experiment("permuted", "backprop", TINY, bin_size=20, steps=80).run.bin_size == 20


def _chunk(program, seeds):
    state = program.init(jnp.asarray(seeds, jnp.int32))
    state, errors, probes = program.chunk(state, jnp.int32(0), 4)
    return state, np.asarray(errors), np.asarray(probes)


def test_seed_alone_equals_seed_in_a_batch():
    """The stream's part of docs/design.md §2 (the remedies' part is tested on every remedy)."""
    e = make_experiment("permuted", "backprop", TINY, steps=160, metrics=("dead",))
    program, _ = e.build()  # one program: seed k alone is the same compiled K = 1 call
    state, errors, probes = _chunk(program, [0, 1])
    assert not np.allclose(errors[0], errors[1])
    for k in range(2):
        s1, e1, p1 = _chunk(program, [k])
        np.testing.assert_array_equal(errors[k], e1[0])
        np.testing.assert_array_equal(probes[k], p1[0])
        np.testing.assert_array_equal(
            state["learner"]["params"]["hidden_0"]["w"][k],
            s1["learner"]["params"]["hidden_0"]["w"][0],
        )
    assert np.all((errors >= 0) & (errors <= 1))  # online accuracy


def test_tiny_end_to_end_run_on_digits(tmp_path):
    e = make_experiment(
        "permuted", "backprop", TINY, seeds=2, steps=200, metrics=("dead", "test_accuracy")
    )
    run_experiment(e, tmp_path, progress=False)
    df = load(tmp_path)
    acc = df[df.metric == "accuracy"]
    assert sorted(acc.step.unique()) == [40, 80, 120, 160, 200]  # one bin per task
    assert acc.value.between(0, 1).all()
    test = df[df.metric == "test_accuracy"]
    assert len(test) == 10 and test.value.between(0, 1).all()
    assert set(df[df.metric == "dead_fraction"].layer) == {"hidden_0", ""}


# ---- presets --------------------------------------------------------------------------


def _validate_without_data(benchmark, name, method):
    """Every key and value of a preset is valid (data files are not needed)."""
    bench = get_benchmark(benchmark)
    settings = preset_settings(load_preset(benchmark, name), parse_method(method))
    fields = {f.name for f in dataclasses.fields(bench.config)}
    b, remedies, run = split_settings(settings, fields)
    config = _config.build(bench.config, b)
    remedy_configs(parse_method(method), remedies, bench.remedy_defaults)
    return config, _config.build(RunConfig, {**bench.run_defaults_for(config), **run})


@pytest.mark.parametrize("benchmark", ["permuted", "scr", "warmstart"])
def test_every_preset_is_valid(benchmark):
    assert available_presets(benchmark)
    for name in available_presets(benchmark):
        for method in ("backprop", "cbp", "l2", "shrink_perturb"):
            _validate_without_data(benchmark, name, method)


def test_paper_preset_is_the_paper_protocol():
    config, run = _validate_without_data("permuted", "paper", "backprop")
    assert (config.data, config.hidden, config.examples_per_task) == ("mnist", (2000,) * 3, 60000)
    assert (config.batch_size, config.optimizer, config.lr) == (1, "sgd", 0.003)
    assert run.steps == 800 * 60000 and run.bin_size == run.metrics_every == 60000
    assert run.probe_size == 2000


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ConfigError, match="did you mean 'quick'.*paper.*quick"):
        load_preset("permuted", "quik")


def test_preset_keeps_only_the_methods_remedy_settings():
    preset = {"settings": {"lr": 1}, "run": {"seeds": 2}, "remedies": {"cbp": {"a": 1}}}
    assert preset_settings(preset, ["l2"]) == {"lr": 1, "seeds": 2}
    assert preset_settings(preset, ["cbp", "l2"])["cbp.a"] == 1
    with pytest.raises(ConfigError, match="remedy in preset"):
        preset_settings({**preset, "remedies": {"cbpp": {}}}, ["cbp"])


def test_cli_preset_with_overrides(tmp_path):
    out = tmp_path / "run"
    argv = ["run", "permuted", "--preset", "quick", "--seeds", "2", "--steps", "2000"]
    argv += ["--set", "lr=0.05", "--set", "hidden=8", "--metrics", "dead"]
    argv += ["--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0
    config = read_config(out)
    assert config["benchmark_config"]["data"] == "digits"  # from the preset
    assert config["benchmark_config"]["lr"] == 0.05  # --set wins over the preset
    assert config["run"]["seeds"] == 2 and config["run"]["steps"] == 2000  # flags win
    assert cli_main(["run", "permuted", "--preset", "nope", "--out", str(out)]) == 2


def test_cli_data_shorthand(tmp_path, capsys):
    argv = ["run", "permuted", "--data", "digits", "--set", "hidden=8", "--set"]
    argv += ["examples_per_task=20", "--steps", "40", "--seeds", "1", "--metrics", ""]
    argv += ["--out", str(tmp_path)]
    assert cli_main([*argv, "--no-progress"]) == 0
    assert read_config(tmp_path)["benchmark_config"]["data"] == "digits"
    empty = tmp_path.parent / "nodata"
    argv = ["run", "permuted", "--data", "mnist", "--set", f"data_dir={empty}", "--steps", "60000"]
    assert cli_main(argv) == 2
    assert "how to get it" in capsys.readouterr().err


def test_yaml_files_are_plain_mappings():
    from importlib import resources

    for name in ("permuted", "scr", "warmstart"):
        text = (resources.files("lopkit.experiments") / f"{name}.yaml").read_text()
        assert isinstance(yaml.safe_load(text), dict)


# ---- the paper's direction on the quick preset ----------------------------------------


@pytest.mark.slow
def test_quick_preset_backprop_loses_plasticity_and_cbp_keeps_it():
    """The quick preset, shortened to 40 tasks (the full 100 are in docs/benchmarks.md):
    backprop's per-task online accuracy falls from its peak by many standard errors; CBP's
    stays near its peak and ends far above backprop's."""
    results = {}
    for method in ("backprop", "cbp"):
        _, errors, _ = run_quick_preset("permuted", method, steps=40_000, metrics=())
        results[method] = errors  # [seeds, tasks]
    late = {m: a[:, -5:].mean(1) for m, a in results.items()}  # per seed, last 5 tasks
    se = {m: v.std(ddof=1) / np.sqrt(v.size) for m, v in late.items()}
    peak = {m: a.mean(0).max() for m, a in results.items()}
    drop = {m: peak[m] - late[m].mean() for m in results}
    assert drop["backprop"] > 3 * se["backprop"], (peak, late, se)
    assert drop["cbp"] < drop["backprop"] / 3, (peak, late, se)
    assert late["cbp"].mean() - late["backprop"].mean() > 3 * np.hypot(se["cbp"], se["backprop"])


def test_throughput_bench_runs_on_a_small_net():
    from lopkit.bench.permuted import format_throughput, permuted_throughput

    r = permuted_throughput(sizes=(16, 8, 4), bin_size=20, repeats=1, memory_bytes=1 << 20)
    assert r["flops_per_step"] == 6 * (16 * 8 + 8 * 4) - 2 * 16 * 8
    assert r["bytes_per_step"] == 4 * 4 * (16 * 8 + 8 * 4)
    assert r["steps_per_second"] > 0 and r["steps_per_second_region_analysis"] > 0
    assert "steps/s" in format_throughput(r)
