"""Relabeled streams (label_permuted, random_labels, changing_targets share one stream):
epochs without replacement, the relabeling rules, chunking, and the label_permuted
benchmark end to end (a seed alone == in a batch, resume == uninterrupted, errors)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _resume_helpers import run_cut_and_resumed
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.streams._labeled import LabeledArrays
from lopkit.streams._relabeled import RelabeledData, RelabeledStreamConfig

N, SIDE, CLASSES = 24, 3, 4


def synthetic(n=N):
    """Distinct rows (a row identifies its example); label i mod 4."""
    rng = np.random.default_rng(0)
    x = rng.choice(256**2, n, replace=False)  # distinct values in the first two pixels
    rows = np.zeros((n, SIDE * SIDE), np.uint8)
    rows[:, 0], rows[:, 1] = x // 256, x % 256
    rows[:, 2:] = rng.integers(0, 256, (n, SIDE * SIDE - 2), dtype=np.uint8)
    return LabeledArrays(
        name="synthetic",
        x_train=rows,
        y_train=(np.arange(n) % CLASSES).astype(np.int32),
        x_test=rows[:8],
        y_test=(np.arange(8) % CLASSES).astype(np.int32),
        image_shape=(SIDE, SIDE, 1),
        num_classes=CLASSES,
    )


ARRAYS = synthetic()
LOOKUP = {row[:2].tobytes(): i for i, row in enumerate(ARRAYS.x_train)}


def ids_of(x):
    raw = np.rint(np.asarray(x) * 255).astype(np.uint8)
    flat = raw.reshape(-1, raw.shape[-1])
    return np.array([LOOKUP[r[:2].tobytes()] for r in flat]).reshape(raw.shape[:-1])


def stream(**config):
    return RelabeledData(RelabeledStreamConfig(**config), arrays=ARRAYS)


def run(s, steps, cuts=(7,), key=0):
    """(state, ids [steps, B], y [steps, B], task [steps]) in blocks of the sizes in cuts."""
    state = s.init(jax.random.PRNGKey(key))
    xs, ys, ts, start, i = [], [], [], 0, 0
    while start < steps:
        n = min(cuts[i % len(cuts)], steps - start)
        state, b = s.block(state, jax.random.PRNGKey(99), jnp.int32(start), n)
        xs.append(ids_of(b.x))
        ys.append(np.asarray(b.y))
        ts.append(np.asarray(b.task))
        start, i = start + n, i + 1
    return state, np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)


def test_epochs_visit_every_example_of_the_subset_once():
    s = stream(relabel="none", subset=10, batch_size=4, change_every=0)
    state, ids, y, task = run(s, 20, cuts=(3, 11, 1))  # 80 draws: 8 epochs of 10
    subset = np.asarray(state["order"])
    assert len(set(subset.tolist())) == 10
    for e in range(8):
        np.testing.assert_array_equal(np.sort(ids.ravel()[10 * e : 10 * e + 10]), np.sort(subset))
    np.testing.assert_array_equal(y, ARRAYS.y_train[ids])  # relabel none: the true labels
    assert not task.any()  # change_every 0: one task


@pytest.mark.parametrize("relabel", ["permute", "random", "shuffle"])
def test_a_steps_data_do_not_depend_on_how_the_run_is_cut(relabel):
    s = stream(relabel=relabel, change_every=5, batch_size=3, subset=20)
    a = run(s, 30, cuts=(30,))
    b = run(s, 30, cuts=(4, 7, 1))  # blocks straddle epochs and tasks
    c = run(s, 30, cuts=(2,))
    for other in (b, c):
        for u, v in zip(a[1:], other[1:], strict=True):
            np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(a[0]["epoch"], other[0]["epoch"])


def test_permute_maps_each_class_by_one_permutation_per_task():
    s = stream(relabel="permute", change_every=10, batch_size=8)
    state, ids, y, task = run(s, 40)
    np.testing.assert_array_equal(task, np.arange(40) // 10)
    maps = []
    for t in range(4):
        true, got = ARRAYS.y_train[ids[task == t]].ravel(), y[task == t].ravel()
        pi = {int(c): set(got[true == c].tolist()) for c in range(CLASSES)}
        assert all(len(v) == 1 for v in pi.values())  # a function of the class …
        perm = [pi[c].pop() for c in range(CLASSES)]
        assert sorted(perm) == list(range(CLASSES))  # … that is a permutation
        maps.append(tuple(perm))
    assert len(set(maps)) > 1  # a new permutation per task (4 tasks, 24 permutations)
    x_test, labels = s.evaluate(state)  # the test split under the last task's map
    np.testing.assert_array_equal(labels, np.asarray(maps[3])[ARRAYS.y_test])


def test_random_labels_are_fixed_within_a_task_and_fresh_across_tasks():
    s = stream(relabel="random", change_every=30, batch_size=8, subset=12)
    state, ids, y, task = run(s, 90)
    per_task = []
    for t in range(3):
        label = {}
        for i, lab in zip(ids[task == t].ravel(), y[task == t].ravel(), strict=True):
            assert label.setdefault(int(i), int(lab)) == lab  # one label per example per task
        assert len(label) == 12
        per_task.append([label[int(i)] for i in np.asarray(state["order"])])
    assert per_task[0] != per_task[1] != per_task[2]
    agree = np.mean(np.asarray(per_task[0]) == ARRAYS.y_train[np.asarray(state["order"])])
    assert agree < 0.75  # not the true labels (chance: 1/4)
    x, labels = s.train_set(state)  # the subset under the last task's labels
    np.testing.assert_array_equal(ids_of(x), np.asarray(state["order"]))
    np.testing.assert_array_equal(labels, per_task[2])
    assert not s.has_test_set


def test_shuffle_keeps_the_class_counts_of_the_subset():
    s = stream(relabel="shuffle", change_every=20, batch_size=6, subset=12)
    state, ids, y, task = run(s, 40)
    true = np.sort(ARRAYS.y_train[np.asarray(state["order"])])
    for t in range(2):
        label = dict(
            zip(ids[task == t].ravel().tolist(), y[task == t].ravel().tolist(), strict=True)
        )
        assert len(label) == 12 and np.array_equal(np.sort(list(label.values())), true)


def test_relabel_first_task_false_keeps_the_true_labels_in_task_0():
    s = stream(relabel="shuffle", change_every=10, batch_size=6, relabel_first_task=False)
    state, ids, y, task = run(s, 30)
    np.testing.assert_array_equal(y[task == 0], ARRAYS.y_train[ids[task == 0]])
    assert (y[task > 0] != ARRAYS.y_train[ids[task > 0]]).any()


def test_probe_is_the_next_steps_task():
    s = stream(relabel="permute", change_every=10, batch_size=2)
    state, *_ = run(s, 10)  # task 0 done; the next step is task 1
    x, y = s.probe(state, jax.random.PRNGKey(3), 20)
    ids = ids_of(x)
    assert len(set(ids.tolist())) == 20  # without replacement
    _, ids2, y2, _ = run(s, 20)  # task 1's map, from the stream's own blocks
    m = {
        int(c): int(lab)
        for c, lab in zip(ARRAYS.y_train[ids2[10:]].ravel(), y2[10:].ravel(), strict=True)
    }
    np.testing.assert_array_equal(y, [m[int(c)] for c in ARRAYS.y_train[ids]])


def test_subset_larger_than_the_data_is_refused():
    with pytest.raises(ConfigError, match="subset .*exceeds the 24 training examples"):
        stream(subset=25)


TINY = {"data": "digits", "hidden": "16", "change_every": 20, "batch_size": 2, "lr": 0.05}


def test_label_permuted_run_defaults_and_errors():
    e = make_experiment("label_permuted", "backprop", TINY)
    assert (e.run.bin_size, e.run.metrics_every, e.run.steps) == (20, 20, 400)
    with pytest.raises(ConfigError, match="data must be one of"):
        make_experiment("label_permuted", "backprop", {**TINY, "data": "svhn"})
    with pytest.raises(ConfigError, match="change_every"):
        make_experiment("label_permuted", "backprop", {**TINY, "change_every": 0})
    from lopkit.data import DataError

    with pytest.raises(DataError, match="how to get it"):
        make_experiment("label_permuted", "backprop", {"data_dir": "/nonexistent"})


def _chunk(program, seeds, bins=4):
    state = program.init(jnp.asarray(seeds, jnp.int32))
    state, errors, probes = program.chunk(state, jnp.int32(0), bins)
    return state, np.asarray(errors), np.asarray(probes)


@pytest.mark.parametrize(
    "benchmark, settings",
    [
        ("label_permuted", TINY),
        ("random_labels", {"data": "digits", "hidden": "16", "subset": 40,
                           "steps_per_task": 20, "batch_size": 4, "lr": 0.05}),
        ("changing_targets", {"data": "digits", "hidden": "16", "subset": 60,
                              "change_every": 20, "batch_size": 4, "lr": 0.05}),
    ],
)  # fmt: skip
def test_a_seed_alone_equals_the_seed_in_a_batch(benchmark, settings):
    e = make_experiment(benchmark, "backprop", settings, steps=80)
    program, _ = e.build()
    state, errors, probes = _chunk(program, [0, 1, 2])
    assert not np.array_equal(errors[0], errors[1])
    assert np.isfinite(probes).all()
    for k in range(3):
        s1, e1, p1 = _chunk(program, [k])
        np.testing.assert_array_equal(errors[k], e1[0])
        np.testing.assert_array_equal(probes[k], p1[0])
        for a, b in zip(
            jax.tree_util.tree_leaves(state["learner"]["params"]),
            jax.tree_util.tree_leaves(s1["learner"]["params"]),
            strict=True,
        ):
            np.testing.assert_array_equal(a[k], b[0])


def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path):
    e = make_experiment("label_permuted", "cbp", {**TINY, "cbp.replacement_rate": 0.01},
                        seeds=2, steps=200, chunk_bins=2)  # fmt: skip
    full = run_cut_and_resumed(e, tmp_path)
    assert {"accuracy", "dead_fraction", "effective_rank"} <= set(full.metric)
    assert len(full) == len(full.drop_duplicates(["seed", "step", "metric", "layer"]))
