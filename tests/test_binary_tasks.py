"""Continual binary tasks: class pairs, epochs and batches, head reset, test accuracy, seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _quick_presets import run_quick_preset
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.benchmarks._binary import BinaryConfig, build, run_defaults
from lopkit.data import DataError
from lopkit.experiments import load_preset, preset_settings
from lopkit.methods import replace_layer_everywhere
from lopkit.streams._binary import BinaryStreamConfig, BinaryTasks, load_class_images

# digits: 139 train / 35 test images per class (its smallest class); batch 50 → 5 steps per
# epoch (278 // 50), 2 epochs → 10 steps per task.
TINY = {
    "data": "digits",
    "padding": "same",
    "channels": (2, 3, 4),
    "kernels": (3, 3, 3),
    "hidden": (5, 6),
    "epochs_per_task": 2,
    "batch_size": 50,
}
S = 10  # steps per task


@pytest.fixture(scope="module")
def stream():
    return BinaryTasks(BinaryStreamConfig(data="digits", epochs_per_task=2, batch_size=50))


def test_sizes_and_run_defaults(stream):
    assert (stream.num_classes, stream.train_per_class, stream.test_per_class) == (10, 139, 35)
    assert (stream.steps_per_epoch, stream.steps_per_task) == (5, S)
    d = run_defaults(BinaryConfig(**TINY))
    assert d["bin_size"] == d["metrics_every"] == S and d["steps"] == 10 * S
    assert S % d["block_size"] == 0 and "test_accuracy" in d["metrics"]
    e = make_experiment("binary", "backprop", TINY, seeds=1)
    assert e.run.bin_size == S and e.run.metrics_every == S


def test_class_pairs_follow_a_per_seed_class_order(stream):
    a, b = stream.init(jax.random.PRNGKey(1)), stream.init(jax.random.PRNGKey(2))
    order = np.asarray(stream.class_order(a))
    assert sorted(order) == list(range(10))
    assert not np.array_equal(order, stream.class_order(b))  # each seed its own order
    for t in range(12):  # 5 tasks per pass; "repeat" reuses the order after that
        expected = order[2 * (t % 5) : 2 * (t % 5) + 2]
        np.testing.assert_array_equal(stream.task_classes(a, t), expected)


def test_redrawn_class_order_changes_every_pass():
    s = BinaryTasks(BinaryStreamConfig(data="digits", class_order="redraw", batch_size=50))
    state = s.init(jax.random.PRNGKey(0))
    first, second = s.class_order(state, 0), s.class_order(state, 1)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(s.task_classes(state, 5), second[:2])


def test_batches_are_the_task_images_labeled_by_class_slot(stream):
    images = load_class_images(stream.config)
    state = stream.init(jax.random.PRNGKey(3))
    _, block = stream.block(state, None, jnp.int32(2 * S - 3), 6)  # straddles tasks 1 → 2
    np.testing.assert_array_equal(block.task, [1, 1, 1, 2, 2, 2])
    x, y = np.asarray(block.x), np.asarray(block.y)
    assert x.shape == (6, 50, 8, 8, 1) and x.dtype == np.float32 and set(np.unique(y)) <= {0, 1}
    pixels = np.rint(x * 255).astype(np.uint8)
    for step in range(6):
        classes = np.asarray(stream.task_classes(state, int(block.task[step])))
        for image, label in zip(pixels[step], y[step], strict=True):
            pool = images.x_train[classes[label]]
            assert np.any(np.all(pool == image, axis=(1, 2, 3)))


def test_each_epoch_is_a_fresh_shuffle_without_repeats(stream):
    state = stream.init(jax.random.PRNGKey(4))
    steps = jnp.arange(S)
    task, pos = jax.vmap(lambda s: stream._positions(state, s))(steps)
    pos = np.asarray(pos).reshape(2, 5 * 50)  # [epoch, position]
    np.testing.assert_array_equal(task, 0)
    for epoch in pos:
        assert len(set(epoch)) == 250 and epoch.max() < 278  # 250 of the task's 278 images
    assert not np.array_equal(pos[0], pos[1])


def test_blocks_do_not_depend_on_how_steps_are_cut(stream):
    state = stream.init(jax.random.PRNGKey(5))
    block = jax.jit(stream.block, static_argnums=3)
    _, whole = block(state, jax.random.PRNGKey(0), jnp.int32(0), 2 * S)
    _, first = block(state, jax.random.PRNGKey(1), jnp.int32(0), S)
    _, rest = block(state, jax.random.PRNGKey(2), jnp.int32(S), S)
    np.testing.assert_array_equal(whole.x, np.concatenate([first.x, rest.x]))
    np.testing.assert_array_equal(whole.y, np.concatenate([first.y, rest.y]))


def test_evaluate_gives_the_current_tasks_test_images(stream):
    images = load_class_images(stream.config)
    state = {**stream.init(jax.random.PRNGKey(6)), "task": jnp.int32(3)}
    x, labels = stream.evaluate(state)
    c0, c1 = np.asarray(stream.task_classes(state, 3))
    expected = np.concatenate([images.x_test[c0], images.x_test[c1]]) / 255.0
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    np.testing.assert_array_equal(labels, [0] * 35 + [1] * 35)


def _program(seeds, method="backprop", **settings):
    e = make_experiment(
        "binary", method, {**TINY, **settings}, seeds=seeds, steps=3 * S, metrics=("test", "dead")
    )
    return e.build()[0]


def _run(program, seed_ids):
    state = program.init(jnp.asarray(seed_ids, jnp.int32))
    state, errors, probes = program.chunk(state, jnp.int32(0), 3)
    return state, np.asarray(errors), np.asarray(probes)


@pytest.fixture(scope="session")
def three_tasks():
    """Seeds 0 and 1 as one program, three tasks: (program, state, errors, probes); computed
    once per worker (session-scoped, as ``study`` in test_sweep_run.py)."""
    program = _program(2)
    return (program, *_run(program, [0, 1]))


def test_batched_seeds_equal_each_seed_alone(three_tasks):
    _, state, errors, probes = three_tasks
    alone = _program(1)  # seeds=1, first_seed=k runs seed id k: init([k])
    for k in range(2):
        s1, e1, p1 = _run(alone, [k])
        np.testing.assert_allclose(errors[k], e1[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(probes[k], p1[0], rtol=1e-5, atol=1e-5)
        leaves = zip(
            jax.tree_util.tree_leaves(state["learner"]),
            jax.tree_util.tree_leaves(s1["learner"]),
            strict=True,
        )
        for a, b in leaves:
            np.testing.assert_allclose(a[k], b[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(errors[0], errors[1])


def test_test_accuracy_is_the_accuracy_on_the_tasks_test_images_at_its_end(three_tasks):
    program, state, _, probes = three_tasks
    column = program.labels.index(("test_accuracy", ""))
    for k in range(2):
        one = jax.tree_util.tree_map(lambda a, k=k: a[k], state)
        x, labels = program.stream.evaluate(one["stream"])
        assert int(one["stream"]["task"]) == 2 and x.shape[0] == 70
        out = jax.jit(program.learner.net.apply)(one["learner"]["params"], x)[0]
        value = float(jnp.mean(jnp.argmax(out, -1) == labels))
        assert probes[k, 2, column] == pytest.approx(value)
    assert np.all((probes[:, :, column] >= 0) & (probes[:, :, column] <= 1))


def test_output_layer_is_zero_at_the_first_step_of_every_task(three_tasks):
    program, state, _, _ = three_tasks
    learner, stream = program.learner, program.stream
    one = jax.tree_util.tree_map(lambda a: a[0], state)  # seed 0 at the end of task 2
    assert float(jnp.abs(one["learner"]["params"]["output"]["w"]).max()) > 0  # trained
    # The first step of task 3, as the engine runs it (a task boundary) …
    _, block = stream.block(one["stream"], None, jnp.int32(3 * S), 1)
    step = jax.jit(learner.step)
    key, t = jax.random.PRNGKey(9), jnp.int32(3 * S)
    after, _, _ = step(one["learner"], block.x[0], block.y[0], jnp.bool_(True), key, t)
    # … equals a plain step from the state with the output layer and its momentum zeroed.
    params, opt_state = one["learner"]["params"], one["learner"]["opt_state"]
    zeroed = jax.tree_util.tree_map(jnp.zeros_like, params["output"])
    params, opt_state = replace_layer_everywhere(params, opt_state, "output", zeroed)
    manual = {**one["learner"], "params": params, "opt_state": opt_state}
    expected, _, _ = step(manual, block.x[0], block.y[0], jnp.bool_(False), key, t)
    leaves = zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(expected), strict=True)
    for a, b in leaves:
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the output layer also starts at zero (the official code zeroes it before task 0)
    fresh = jax.jit(learner.net.init)(jax.random.PRNGKey(0))
    assert float(jnp.abs(fresh["output"]["w"]).max()) == 0


@pytest.mark.slow
def test_batched_seeds_equal_each_seed_alone_with_cbp():
    settings = {"cbp.replacement_rate": 0.05, "cbp.maturity_threshold": 3}
    state, errors, _ = _run(_program(2, "cbp", **settings), [0, 1])
    alone = _program(1, "cbp", **settings)
    for k in range(2):
        s1, e1, _ = _run(alone, [k])
        np.testing.assert_allclose(errors[k], e1[0], rtol=1e-5, atol=1e-6)
        assert sum(int(layer["replaced"][0]) for layer in s1["learner"]["rules"][0]) > 0
        np.testing.assert_allclose(
            state["learner"]["params"]["conv_1"]["w"][k],
            s1["learner"]["params"]["conv_1"]["w"][0],
            rtol=1e-5,
            atol=1e-6,
        )


def test_missing_data_is_a_data_error_and_impossible_sizes_config_errors(tmp_path):
    with pytest.raises(DataError, match="mnist"):
        make_experiment("binary", "backprop", {**TINY, "data": "mnist", "data_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="smallest class"):
        build(BinaryConfig(**{**TINY, "train_per_class": 500}))
    with pytest.raises(ConfigError, match="batch_size"):
        build(BinaryConfig(**{**TINY, "batch_size": 1000}))
    with pytest.raises(ConfigError, match="layernorm"):
        make_experiment("binary", "layernorm", TINY)


def test_quick_preset_builds():
    preset = load_preset("binary", "quick")
    e = make_experiment("binary", "cbp", preset_settings(preset, ["cbp"]))
    assert e.run.steps == 480 * e.run.bin_size and e.remedy_configs[0].replacement_rate == 1e-3


# ---- the paper's direction on the quick preset ----------------------------------------


@pytest.mark.slow
def test_quick_preset_backprop_loses_plasticity_and_cbp_keeps_it():
    """The whole quick preset (480 tasks, 10 seeds; test accuracy only): backprop's test
    accuracy over the last 20% of tasks is below its first 20% for at least 8 of 10 seeds
    (a sign test, p ≈ 0.055 under no change) and on average; CBP's late mean is within two
    standard errors of its early mean and above backprop's late mean."""
    change, late = {}, {}
    for method in ("backprop", "cbp"):
        program, _, probes = run_quick_preset("binary", method, metrics=("test_accuracy",))
        accuracy = probes[:, :, program.labels.index(("test_accuracy", ""))]  # [seeds, tasks]
        k = accuracy.shape[1] // 5
        early, late[method] = accuracy[:, :k].mean(1), accuracy[:, -k:].mean(1)
        change[method] = late[method] - early
    se = {m: d.std(ddof=1) / np.sqrt(d.size) for m, d in change.items()}
    assert (change["backprop"] < 0).sum() >= 8, change
    assert change["backprop"].mean() < 0, change
    assert change["cbp"].mean() > -2 * se["cbp"], (change, se)
    assert late["cbp"].mean() > late["backprop"].mean(), late
