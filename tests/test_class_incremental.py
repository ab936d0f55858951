"""Class-incremental learning: the class schedule, batches, the step-size schedule, the
best-validation restore, evaluation over the seen classes, seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.benchmarks._class_incremental import (
    BestValidation,
    ClassIncrementalConfig,
    make_optimizer_fn,
    step_size,
)
from lopkit.streams._class_incremental import (
    ClassIncremental,
    ClassIncrementalStreamConfig,
    SplitImages,
)


def _images(classes, n_train, n_val, n_test, shape=(4, 4, 1)):
    """Synthetic images whose first pixel encodes (class, split, index)."""
    rng = np.random.default_rng(0)
    split = {}
    for k, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        x = rng.integers(0, 256, (classes, n, *shape), dtype=np.uint8)
        split[k] = x
    zeros, ones = np.zeros(shape[-1], np.float32), np.ones(shape[-1], np.float32)
    return SplitImages("synthetic", split["train"], split["val"], split["test"], zeros, ones)


def test_cifar100_schedule():
    """5 classes, +5 every 200 epochs of 450·n_t / 90 steps: 20 tasks, 1,050,000 steps."""
    stream = ClassIncremental(ClassIncrementalStreamConfig(), _images(100, 450, 50, 100))
    assert stream.num_tasks == 20
    np.testing.assert_array_equal(stream.classes_per_task, 5 * np.arange(1, 21))
    np.testing.assert_array_equal(stream.epoch_steps, 25 * np.arange(1, 21))
    assert stream.task_starts[1] == 200 * 25 and stream.task_starts[2] == 200 * (25 + 50)
    assert stream.total_steps == 5000 * 210 and stream.step_gcd == 5000
    steps = jnp.array([0, 24, 25, 4999, 5000, 5049, 14999, 15000])
    s = jax.jit(stream.schedule)(steps)
    np.testing.assert_array_equal(s["task"], [0, 0, 0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(s["classes"], [5, 5, 5, 5, 10, 10, 10, 15])
    np.testing.assert_array_equal(s["epoch"], [0, 0, 1, 199, 0, 0, 199, 0])
    np.testing.assert_array_equal(s["epoch_end"], [0, 1, 0, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(s["task_end"], [0, 0, 0, 1, 0, 0, 1, 0])


def test_uneven_last_task_and_invalid_sizes():
    c = ClassIncrementalStreamConfig(
        initial_classes=4, class_increment=3, epochs_per_task=2, train_per_class=6, batch_size=3
    )
    stream = ClassIncremental(c, _images(10, 6, 2, 2))
    np.testing.assert_array_equal(stream.classes_per_task, [4, 7, 10])
    np.testing.assert_array_equal(stream.epoch_steps, [8, 14, 20])
    with pytest.raises(ConfigError, match="multiple of batch_size"):
        ClassIncrementalStreamConfig(train_per_class=450, batch_size=100).check()


@pytest.fixture(scope="module")
def small():
    c = ClassIncrementalStreamConfig(
        initial_classes=2,
        class_increment=2,
        epochs_per_task=2,
        train_per_class=6,
        batch_size=4,
        augment=(),
    )
    return ClassIncremental(c, _images(6, 6, 2, 3))


def test_each_epoch_shows_every_image_of_the_seen_classes_once(small):
    state = small.init(jax.random.PRNGKey(0))
    order = np.asarray(small.class_order(state))
    # task 1 (4 classes): epochs of 24 / 4 = 6 steps, starting at step 2·3 = 6
    start = int(small.task_starts[1])
    _, block = jax.jit(small.block, static_argnums=3)(state, None, jnp.int32(start), 12)
    np.testing.assert_array_equal(block.task, 1)
    x, y = np.asarray(block.x), np.asarray(block.y)
    assert np.all(y[..., 1] == 4) and np.all(y[..., 0] < 4)
    images = small.data["train"]
    for epoch in (x[:6], x[6:]):  # [6 steps, 4, 4, 4, 1]
        seen = set()
        for step_x in epoch:
            for image in step_x:
                pixels = np.rint(image * 255).astype(np.uint8)
                matches = np.argwhere(np.all(images == pixels, axis=(2, 3, 4)))
                assert len(matches) == 1
                cls, j = matches[0]
                assert cls in order[:4]
                seen.add((cls, j))
        assert len(seen) == 24  # 4 classes × 6 images, each once
    labels = y[..., 0].reshape(-1)
    flat = np.rint(x.reshape(-1, 4, 4, 1) * 255).astype(np.uint8)
    for image, label in zip(flat, labels, strict=True):  # label = the class's slot in the order
        cls = np.argwhere(np.all(images == image, axis=(2, 3, 4)))[0][0]
        assert order[label] == cls


def test_evaluation_pads_unseen_classes_and_masks_their_outputs(small):
    state = {**small.init(jax.random.PRNGKey(1)), "task": jnp.int32(1)}
    x, labels = small.evaluate(state)
    assert x.shape == (18, 4, 4, 1)
    np.testing.assert_array_equal(labels, [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [-1] * 6)
    np.testing.assert_array_equal(small.output_mask(state), [1, 1, 1, 1, 0, 0])


def test_augmentations_keep_shapes_and_do_nothing_at_zero():
    c = ClassIncrementalStreamConfig(augment=("flip", "crop", "rotate"), crop_padding=2)
    stream = ClassIncremental(c, _images(100, 450, 50, 100, shape=(8, 8, 3)))
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 8, 8, 3))
    out = jax.jit(stream.augment)(x, jax.random.PRNGKey(1))
    assert out.shape == x.shape and not np.allclose(out, x)
    from lopkit.streams._class_incremental import _rotate

    np.testing.assert_allclose(_rotate(x[0], jnp.float32(0.0)), x[0], atol=1e-6)
    quarter = _rotate(x[0], jnp.float32(np.pi / 2))
    np.testing.assert_allclose(quarter, jnp.rot90(x[0], k=-1, axes=(0, 1)), atol=1e-5)


def test_step_size_schedule_within_each_task_follows_the_global_step():
    c = ClassIncrementalConfig()
    epochs = jnp.array([0, 59, 60, 119, 120, 159, 160, 199])
    expected = 0.1 * 0.2 ** np.array([0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(step_size(c, epochs), expected, rtol=1e-6)
    stream = ClassIncremental(ClassIncrementalStreamConfig(), _images(100, 450, 50, 100))
    tx = make_optimizer_fn(c, stream)(
        {"optimizer": "sgd", "momentum": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    )
    params = {"w": jnp.zeros(())}
    grads = {"w": jnp.ones(())}
    state = tx.init(params)
    # task 2 (15 classes, 75-step epochs) starts at 5000 + 10000: its epoch 61 → α·0.2
    step = 15_000 + 61 * 75
    updates, _ = tx.update(grads, state, params, step=jnp.int32(step))
    assert float(updates["w"]) == pytest.approx(-0.1 * 0.2)
    updates, _ = tx.update(grads, state, params, step=jnp.int32(15_000))
    assert float(updates["w"]) == pytest.approx(-0.1)


class _Stream:
    """Epoch ends at steps 1, 3, 5; the task ends at step 5."""

    def schedule(self, step):
        return {"epoch_end": step % 2 == 1, "task_end": step == 5}


class _Selection(BestValidation):
    def validation_accuracy(self, params, stream, stream_state, step):
        return params["accuracy"]  # each weight set carries its own validation accuracy


def test_best_validation_weights_are_restored_at_the_task_end():
    protocol = _Selection(net=None)
    params = {"accuracy": jnp.float32(0.0)}
    state = protocol.init(params)
    after = jax.jit(protocol.after_step, static_argnums=2)
    accuracies = [0.1, 0.5, 0.3, 0.7, 0.6, 0.4]  # the weights after steps 0 … 5
    for step, acc in enumerate(accuracies):
        learner = {"params": {"accuracy": jnp.float32(acc)}}
        state, learner = after(state, learner, _Stream(), None, jnp.int32(step))
        if step in (1, 3):  # epoch ends: the best so far is kept, the weights go on
            assert float(learner["params"]["accuracy"]) == pytest.approx(acc)
    assert float(state["accuracy"]) == -1.0  # a fresh search for the next task
    assert float(learner["params"]["accuracy"]) == pytest.approx(0.7)  # step 3's, the best


TINY = {
    "data": "digits",
    "initial_classes": 2,
    "class_increment": 4,
    "epochs_per_task": 2,
    "train_per_class": 40,
    "val_per_class": 10,
    "test_per_class": 20,
    "batch_size": 40,
    "augment": "crop",
    "crop_padding": 1,
    "lr_milestones": "1",
    "widths": "2,3",
    "blocks": "1,1",
    "lr": 0.05,
}


def test_end_to_end_restores_best_weights_and_measures_seen_classes():
    e = make_experiment("class_incremental", "backprop", TINY, seeds=2, metrics=("test",))
    assert e.run.steps == 2 * (2 + 6 + 10) and e.run.bin_size == 4  # epochs of 2, 6, 10 steps
    program, _ = e.build()
    state = program.init(jnp.arange(2))
    state, errors, probes = program.chunk(state, jnp.int32(0), 9)
    params, best = state["learner"]["params"], state["protocol"]["params"]
    for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(best), strict=True
    ):
        np.testing.assert_array_equal(a, b)  # the end of the last task: restored
    np.testing.assert_array_equal(state["protocol"]["accuracy"], -1.0)
    assert np.all((probes >= 0) & (probes <= 1)) and np.asarray(errors).shape == (2, 9)


@pytest.mark.slow
def test_batched_seeds_equal_each_seed_alone():
    def run(seed_ids):
        e = make_experiment(
            "class_incremental", "cbp", {**TINY, "cbp.maturity_threshold": 2}, seeds=1
        )
        program, _ = e.build()
        state = program.init(jnp.asarray(seed_ids, jnp.int32))
        state, errors, probes = program.chunk(state, jnp.int32(0), 9)
        return state, np.asarray(errors), np.asarray(probes)

    state, errors, probes = run([0, 1])
    for k in range(2):
        s1, e1, p1 = run([k])
        np.testing.assert_allclose(errors[k], e1[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(probes[k], p1[0], rtol=1e-4, atol=1e-5)
