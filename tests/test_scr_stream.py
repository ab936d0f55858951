"""Slowly-changing regression: the LTU target and both flip schedules."""

import jax
import jax.numpy as jnp
import numpy as np

from lopkit.streams import SCRStreamConfig, SlowlyChangingRegression, ltu_target, ltu_thresholds


def test_ltu_thresholds_count_negative_weights_and_bias():
    # m = 3 inputs, 2 LTUs. Unit 0: weights (+,-,-), bias - → S=3; unit 1: (+,+,+), bias + → S=0.
    w = jnp.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0]])
    b = jnp.array([-1.0, 1.0])
    theta = ltu_thresholds(w, b, beta=0.7)
    np.testing.assert_allclose(theta, [0.7 * 4 - 3, 0.7 * 4 - 0], rtol=1e-6)


def test_ltu_target_on_hand_computed_inputs():
    w = jnp.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0]])
    b = jnp.array([-1.0, 1.0])
    target = {"w": w, "b": b, "v": jnp.array([1.0, -1.0]), "theta": ltu_thresholds(w, b, 0.7)}
    # θ = (-0.2, 2.8).
    # x=(1,0,0): pre = (1-1, 1+1) = (0, 2): φ = (0>-0.2, 2>2.8) = (1, 0) → y = 1
    # x=(1,1,1): pre = (-1-1, 3+1) = (-2, 4): φ = (0, 1) → y = -1
    # x=(0,0,0): pre = (-1, 1): φ = (0, 0) → y = 0
    # x=(1,1,0): pre = (0-1, 2+1) = (-1, 3): φ = (0, 1) → y = -1
    x = jnp.array([[1.0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(ltu_target(target, x)[:, 0], [1.0, -1.0, 0.0, -1.0])


def test_target_weights_are_signs_and_thresholds_consistent():
    stream = SlowlyChangingRegression(SCRStreamConfig())
    state = stream.init(jax.random.PRNGKey(3))
    t = state["target"]
    for name in ("w", "b", "v"):
        assert set(np.unique(np.asarray(t[name]))) <= {-1.0, 1.0}
    negatives = (np.asarray(t["w"]) < 0).sum(0) + (np.asarray(t["b"]) < 0)
    np.testing.assert_allclose(t["theta"], 0.7 * 21 - negatives, rtol=1e-6)


def _bits_over(stream, steps, key=0):
    state = stream.init(jax.random.PRNGKey(key))
    out = []
    for i in range(steps // 50):
        state, block = stream.block(state, jax.random.PRNGKey(100 + i), jnp.int32(i * 50), 50)
        out.append(np.asarray(block.x[:, 0, :]))
    return np.concatenate(out), state


def test_flip_one_flips_exactly_one_bit_at_each_period():
    c = SCRStreamConfig(flip_period=40, flip_one=True)
    x, _ = _bits_over(SlowlyChangingRegression(c), 400)
    flipping = x[:, : c.flipping_bits]
    changes = np.abs(np.diff(flipping, axis=0)).sum(1)  # change between step t-1 and t
    steps = np.arange(1, 400)
    np.testing.assert_array_equal(changes[steps % 40 == 0], 1)
    np.testing.assert_array_equal(changes[steps % 40 != 0], 0)


def test_redraw_changes_bits_only_at_period_boundaries():
    c = SCRStreamConfig(flip_period=40, flip_one=False)
    x, _ = _bits_over(SlowlyChangingRegression(c), 2000)
    flipping = x[:, : c.flipping_bits]
    changes = np.abs(np.diff(flipping, axis=0)).sum(1)
    steps = np.arange(1, 2000)
    assert np.all(changes[steps % 40 != 0] == 0)
    # redrawing 15 fair bits changes about 7.5 of them
    assert 5.5 < changes[steps % 40 == 0].mean() < 9.5


def test_free_bits_are_iid_and_tasks_count_periods():
    c = SCRStreamConfig(flip_period=40)
    stream = SlowlyChangingRegression(c)
    state = stream.init(jax.random.PRNGKey(0))
    _, block = stream.block(state, jax.random.PRNGKey(1), jnp.int32(70), 50)
    free = np.asarray(block.x[:, 0, c.flipping_bits :])
    assert free.shape == (50, 5) and 0.3 < free.mean() < 0.7
    np.testing.assert_array_equal(block.task, (70 + np.arange(50)) // 40)


def test_blocks_continue_the_bits_across_boundaries():
    # Two blocks of 50 steps give the same flipping bits as one block of 100 steps
    # would, when no change falls inside (bits carry over in the state).
    c = SCRStreamConfig(flip_period=1000)
    stream = SlowlyChangingRegression(c)
    state = stream.init(jax.random.PRNGKey(0))
    state, a = stream.block(state, jax.random.PRNGKey(1), jnp.int32(0), 50)
    _, b = stream.block(state, jax.random.PRNGKey(2), jnp.int32(50), 50)
    np.testing.assert_array_equal(a.x[-1, 0, :15], b.x[0, 0, :15])
