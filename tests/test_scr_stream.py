"""Slowly-changing regression: the LTU target and both flip schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._errors import ConfigError
from lopkit.streams import SCRStreamConfig, SlowlyChangingRegression, ltu_target, ltu_thresholds

pytestmark = pytest.mark.unit  # the sub-minute tier (make test-unit): pure functions

# m = 3 inputs, 2 LTUs. Unit 0: weights (+,-,-), bias -; unit 1: weights (+,+,+), bias +.
W = jnp.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0]])
B = jnp.array([-1.0, 1.0])


def test_official_thresholds_are_fixltunet_formula():
    # lop/nets/fix_ltu_net.py: S = (m - sum(w) + b) / 2, tau = beta (m + 1) - S.
    # Unit 0: S = (3 - (-1) + (-1)) / 2 = 1.5; unit 1: S = (3 - 3 + 1) / 2 = 0.5.
    theta = ltu_thresholds(W, B, beta=0.7)
    np.testing.assert_allclose(theta, [0.7 * 4 - 1.5, 0.7 * 4 - 0.5], rtol=1e-6)
    # = #negative input weights + b/2
    negatives = (np.asarray(W) < 0).sum(0)
    np.testing.assert_allclose(theta, 0.7 * 4 - (negatives + np.asarray(B) / 2), rtol=1e-6)


def test_paper_text_thresholds_count_negative_weights_and_bias():
    # Unit 0: 2 negative weights + negative bias → S = 3; unit 1: S = 0.
    theta = ltu_thresholds(W, B, beta=0.7, target="paper_text")
    np.testing.assert_allclose(theta, [0.7 * 4 - 3, 0.7 * 4 - 0], rtol=1e-6)


def test_ltu_target_on_hand_computed_inputs():
    x = jnp.array([[1.0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
    # pre-activations x @ W + B: (0, 2), (-2, 4), (-1, 1), (-1, 3)
    v = jnp.array([1.0, -1.0])
    # official: θ = (1.3, 2.3), c = -1: φ = (0,0), (0,1), (0,0), (0,1) → y = -1, -2, -1, -2
    official = {"w": W, "b": B, "v": v, "theta": ltu_thresholds(W, B, 0.7), "c": -1.0}
    np.testing.assert_array_equal(ltu_target(official, x)[:, 0], [-1.0, -2.0, -1.0, -2.0])
    # paper_text: θ = (-0.2, 2.8), c = 0: φ = (1,0), (0,1), (0,0), (0,1) → y = 1, -1, 0, -1
    theta = ltu_thresholds(W, B, 0.7, "paper_text")
    text = {"w": W, "b": B, "v": v, "theta": theta, "c": jnp.float32(0)}
    np.testing.assert_array_equal(ltu_target(text, x)[:, 0], [1.0, -1.0, 0.0, -1.0])


def test_target_weights_are_signs_and_thresholds_consistent():
    for variant in ("official", "paper_text"):
        stream = SlowlyChangingRegression(SCRStreamConfig(target=variant))
        t = stream.init(jax.random.PRNGKey(3))["target"]
        for name in ("w", "b", "v"):
            assert set(np.unique(np.asarray(t[name]))) <= {-1.0, 1.0}
        w, b = np.asarray(t["w"]), np.asarray(t["b"])
        if variant == "official":
            s = (20 - w.sum(0) + b) / 2
        else:
            s = (w < 0).sum(0) + (b < 0)
        np.testing.assert_allclose(t["theta"], 0.7 * 21 - s, rtol=1e-6)


def test_output_bias_is_drawn_per_seed():
    stream = SlowlyChangingRegression(SCRStreamConfig())
    biases = [float(stream.init(jax.random.PRNGKey(k))["target"]["c"]) for k in range(20)]
    assert set(biases) == {-1.0, 1.0}  # both signs among 20 seeds (P(miss) = 2^-19)
    text = SlowlyChangingRegression(SCRStreamConfig(target="paper_text"))
    assert all(float(text.init(jax.random.PRNGKey(k))["target"]["c"]) == 0 for k in range(5))
    # the bias enters the output: y - c is the paper-text-style sum of the LTUs
    state = stream.init(jax.random.PRNGKey(0))
    _, block = stream.block(state, jax.random.PRNGKey(1), jnp.int32(0), 50)
    t = state["target"]
    phi = (np.asarray(block.x) @ np.asarray(t["w"]) + np.asarray(t["b"])) > np.asarray(t["theta"])
    np.testing.assert_allclose(block.y[..., 0], phi @ np.asarray(t["v"]) + float(t["c"]))


def test_unknown_target_is_refused():
    with pytest.raises(ConfigError, match="official"):
        ltu_thresholds(W, B, 0.7, target="paper")


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


@pytest.mark.parametrize(
    "config",
    [
        SCRStreamConfig(flip_period=30),
        SCRStreamConfig(flip_period=30, flip_one=True, target="paper_text"),
        SCRStreamConfig(flip_period=7, batch_size=3, num_bits=12, flipping_bits=6),
        SCRStreamConfig(flip_period=30, num_bits=30, flipping_bits=10),  # 20 free bits: no table
    ],
)
def test_block_targets_equal_the_target_network_on_the_block_inputs(config):
    # The block reads targets from a (flip state × free-bit code) table; they must be
    # exactly the target network's outputs on the inputs it returns, changes included.
    stream = SlowlyChangingRegression(config)
    state = stream.init(jax.random.PRNGKey(3))
    for i in range(3):
        state, block = stream.block(state, jax.random.PRNGKey(10 + i), jnp.int32(i * 50), 50)
        np.testing.assert_array_equal(block.y, ltu_target(state["target"], block.x))
        assert block.x.shape == (50, config.batch_size, config.num_bits)
