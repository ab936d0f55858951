"""Warm-start schedules: phases, subsets, label noise, blur; the comparison with a fresh start."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.benchmarks._warmstart import default_bin_size
from lopkit.experiments.warmstart import compare
from lopkit.streams._labeled import LabeledArrays
from lopkit.streams._warmstart import WarmstartData, WarmstartStreamConfig

N, SIDE, CLASSES = 40, 4, 4
N1 = 50


def synthetic():
    """Distinct rows (a row identifies its example); label i mod 4."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N, SIDE * SIDE), dtype=np.uint8)
    return LabeledArrays(
        name="synthetic",
        x_train=x,
        y_train=(np.arange(N) % CLASSES).astype(np.int32),
        x_test=x[:6],
        y_test=np.arange(6, dtype=np.int32) % CLASSES,
        image_shape=(SIDE, SIDE, 1),
        num_classes=CLASSES,
    )


ARRAYS = synthetic()
LOOKUP = {row.tobytes(): i for i, row in enumerate(ARRAYS.x_train)}


def run_stream(variant, steps=2 * N1, batch=16, key=0, **config):
    """(state, x [steps, batch, D], y [steps, batch], task [steps]) in blocks of 25."""
    c = WarmstartStreamConfig(
        variant=variant, phase1_steps=N1, batch_size=batch, blur_factor=2, **config
    )
    s = WarmstartData(c, arrays=ARRAYS)
    state = s.init(jax.random.PRNGKey(key))
    xs, ys, tasks = [], [], []
    for start in range(0, steps, 25):
        state, b = s.block(state, jax.random.PRNGKey(7), jnp.int32(start), 25)
        xs.append(np.asarray(b.x))
        ys.append(np.asarray(b.y))
        tasks.append(np.asarray(b.task))
    return s, state, np.concatenate(xs), np.concatenate(ys), np.concatenate(tasks)


def ids_of(x):
    """Example indices of float images x [..., D] (unblurred)."""
    raw = np.rint(x * 255).astype(np.uint8)
    flat = raw.reshape(-1, raw.shape[-1])
    return np.array([LOOKUP[r.tobytes()] for r in flat]).reshape(raw.shape[:-1])


def test_phase_boundary_is_a_task_boundary_except_for_the_baseline():
    *_, task = run_stream("fraction")
    np.testing.assert_array_equal(task, (np.arange(2 * N1) >= N1).astype(int))
    *_, task = run_stream("none")
    assert not task.any()


def test_fraction_subset_in_phase_1_whole_set_in_phase_2():
    s, state, x, y, _ = run_stream("fraction", fraction=0.25)
    ids = ids_of(x)
    subset = set(np.asarray(state["order"])[:10].tolist())  # 25% of 40
    assert set(ids[:N1].ravel()) == subset  # 800 draws hit all 10 and nothing else
    assert len(set(ids[N1:].ravel())) == N  # phase 2: the whole set
    np.testing.assert_array_equal(y, ARRAYS.y_train[ids])  # labels untouched
    assert int(state["step"]) == 2 * N1


def test_subset_is_the_whole_training_set_of_both_phases():
    _, state, x, *_ = run_stream("fraction", fraction=0.5, subset=20)
    ids, order = ids_of(x), np.asarray(state["order"])
    assert set(ids[:N1].ravel()) == set(order[:10].tolist())  # half of the 20
    assert set(ids[N1:].ravel()) == set(order[:20].tolist())  # phase 2: the 20, no more
    _, state, x, *_ = run_stream("none", subset=20)
    assert set(ids_of(x).ravel()) == set(np.asarray(state["order"])[:20].tolist())
    with pytest.raises(ConfigError, match="subset .41. exceeds the 40 training examples"):
        WarmstartData(WarmstartStreamConfig(subset=41), arrays=ARRAYS)


def test_growing_subset_grows_linearly_to_the_whole_set():
    s, state, x, *_ = run_stream("growing", fraction=0.25)
    position = {int(i): p for p, i in enumerate(np.asarray(state["order"]))}
    pos = np.vectorize(position.get)(ids_of(x))  # position in the seed's order
    m = np.asarray(s.available(jnp.arange(2 * N1)))
    assert m[0] == 10 and m[N1 - 1] == 10 + (30 * (N1 - 1)) // N1 and (m[N1:] == N).all()
    assert (pos < m[:, None]).all()
    assert pos[N1 - 10 : N1].max() >= 30 > pos[:10].max()  # late draws reach further


def test_noisy_labels_are_redrawn_at_rate_p_in_phase_1_only():
    _, _, x, y, _ = run_stream("noisy_labels", steps=200, batch=64, label_noise=0.5)
    true = ARRAYS.y_train[ids_of(x)]
    wrong = y != true
    # A redraw is uniform over all 4 classes: wrong with probability p·3/4 = 0.375.
    assert abs(wrong[:N1].mean() - 0.375) < 0.03
    assert not wrong[N1:].any()
    # redrawn afresh: the same example gets different labels across phase 1
    first = ids_of(x)[:N1].ravel()
    labels = y[:N1].ravel()
    assert any(len(set(labels[first == i])) > 1 for i in range(N))


def test_wrong_labels_are_a_fixed_relabeling_of_a_share_p():
    s, state, x, y, _ = run_stream("wrong_labels", steps=200, batch=64, label_noise=0.5)
    ids = ids_of(x)
    relabeled = np.asarray(state["labels"])
    share = (relabeled != ARRAYS.y_train).mean()
    assert 0.25 < share < 0.75  # 40 examples, p = 0.5
    np.testing.assert_array_equal(y[:N1], relabeled[ids[:N1]])  # fixed per example
    np.testing.assert_array_equal(y[N1:], ARRAYS.y_train[ids[N1:]])  # clean in phase 2
    other = WarmstartData(s.config, ARRAYS).init(jax.random.PRNGKey(1))["labels"]
    assert not np.array_equal(relabeled, np.asarray(other))  # drawn per seed


def nearest(x, table):
    """(distance, index) of the closest row of table [N, D] to each image of x [..., D]."""
    d = np.abs(x.reshape(-1, 1, x.shape[-1]) - table[None]).max(-1)
    return d.min(1).reshape(x.shape[:-1]), d.argmin(1).reshape(x.shape[:-1])


def test_blur_is_block_mean_in_phase_1_only():
    s, _, x, y, _ = run_stream("blur", batch=8)
    image = jnp.arange(16.0).reshape(1, 16)  # 4×4, blocks of 2×2
    top, bottom = [2.5, 2.5, 4.5, 4.5], [10.5, 10.5, 12.5, 12.5]
    np.testing.assert_allclose(s.blur(image).reshape(4, 4), [top, top, bottom, bottom])
    raw = ARRAYS.x_train.astype(np.float32) / 255
    blurred = np.asarray(s.blur(jnp.asarray(raw)))
    d1, ids1 = nearest(x[:N1], blurred)
    assert d1.max() < 1e-6  # phase 1: every input is a blurred training image …
    assert nearest(x[:N1], raw)[0].min() > 1e-3  # … and none an unblurred one
    d2, ids2 = nearest(x[N1:], raw)
    assert d2.max() < 1e-6  # phase 2: the images themselves
    np.testing.assert_array_equal(y, ARRAYS.y_train[np.concatenate([ids1, ids2])])


def test_probe_and_evaluate():
    s, state, *_ = run_stream("fraction", steps=25, fraction=0.25)
    x, y = s.probe(state, jax.random.PRNGKey(0), 30)
    assert x.shape == (30, 16) and y.shape == (30,)
    assert set(ids_of(np.asarray(x))) <= set(np.asarray(state["order"])[:10].tolist())
    x_test, labels = s.evaluate(state)
    np.testing.assert_allclose(x_test, ARRAYS.x_test / 255, rtol=1e-6)
    np.testing.assert_array_equal(labels, ARRAYS.y_test)


def test_config_checks():
    with pytest.raises(ConfigError, match="fraction"):
        make_experiment("warmstart", "backprop", {"fraction": 0})
    with pytest.raises(ConfigError, match="blur_factor 3 must divide"):
        make_experiment("warmstart", "backprop", {"variant": "blur", "blur_factor": 3})
    with pytest.raises(ConfigError, match="variant must be one of"):
        make_experiment("warmstart", "backprop", {"variant": "shuffled"})


def test_run_defaults_cover_both_phases_with_the_switch_on_a_bin_edge():
    assert default_bin_size(2000, 2000) == 200
    assert default_bin_size(300, 500) == 25  # divides gcd 100, at most 800 / 20 = 40
    assert default_bin_size(7, 11) == 1
    e = make_experiment("warmstart", "backprop", {"phase1_steps": 300, "phase2_steps": 500})
    assert (e.run.steps, e.run.bin_size, e.run.metrics_every) == (800, 25, 25)
    assert "test_accuracy" in e.run.metrics


def test_tiny_comparison_with_the_fresh_start(tmp_path, capsys):
    settings = {"hidden": "16", "phase1_steps": 60, "phase2_steps": 60, "batch_size": 16}
    run = {"seeds": 2, "metrics": ("test_accuracy",)}
    table = compare("wrong_labels", settings=settings, out=tmp_path, **run)
    assert list(table["variant"]) == ["wrong_labels", "none"]
    assert table[["train", "test"]].stack().between(0, 1).all()
    assert table.loc[1, "test_gap"] == 0 and np.isfinite(table.loc[0, "test_gap"])
    results = tmp_path / "none-backprop" / "metrics.parquet"
    assert results.exists() and "final test" in capsys.readouterr().out
    written = results.stat().st_mtime_ns
    again = compare("noisy_labels", settings=settings, out=tmp_path, **run)
    assert results.stat().st_mtime_ns == written  # the same baseline is reused
    assert again.loc[1, "test"] == table.loc[1, "test"]
