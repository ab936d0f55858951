"""Unit-activity metrics on hand-built activations (dense and conv-shaped)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit.metrics import (
    as_units,
    dead_fraction,
    dormant_fraction,
    dormant_scores,
    inactive_fraction,
    linear_fraction,
    saturated_fraction,
)

pytestmark = pytest.mark.unit  # the sub-minute tier (make test-unit): pure functions

# batch 3 x units 4: unit 0 dead; E|h| = [0, 2, 1/3, 2/3], layer mean 3/4.
H = np.array(
    [
        [0.0, 1.0, 0.0, 2.0],
        [0.0, -3.0, 0.0, 0.0],
        [0.0, 2.0, 1.0, 0.0],
    ]
)


def _conv():
    """[batch 2, 2, 2, channels 3]: ch 0 zero, ch 1 = 0.8 at one position, ch 2 all ones."""
    h = np.zeros((2, 2, 2, 3))
    h[1, 0, 1, 1] = 0.8
    h[..., 2] = 1.0
    return h


def test_as_units_shapes():
    assert as_units(H).shape == (3, 4)
    assert as_units(_conv()).shape == (8, 3)
    np.testing.assert_array_equal(as_units(_conv())[:, 2], np.ones(8))
    with pytest.raises(ValueError):
        as_units(np.zeros(5))


def test_dead_fraction():
    assert float(dead_fraction(H)) == 0.25
    assert float(dead_fraction(_conv())) == pytest.approx(1 / 3)
    assert float(dead_fraction(np.zeros((4, 5)))) == 1.0
    assert float(dead_fraction(np.ones((4, 5)))) == 0.0


def test_dormant_scores_hand_values():
    np.testing.assert_allclose(dormant_scores(H), [0.0, 8 / 3, 4 / 9, 8 / 9], rtol=1e-6)
    # conv: E|h| over batch x height x width = [0, 0.1, 1], layer mean 1.1 / 3.
    np.testing.assert_allclose(dormant_scores(_conv()), [0.0, 0.3 / 1.1, 3 / 1.1], rtol=1e-6)
    # an evenly active layer scores 1 everywhere (mean normalization, not sum).
    np.testing.assert_allclose(dormant_scores(np.full((3, 4), -2.0)), np.ones(4))


def test_dormant_scores_all_zero_layer_is_zero_not_nan():
    s = dormant_scores(np.zeros((3, 4)))
    np.testing.assert_array_equal(s, np.zeros(4))
    assert float(dormant_fraction(np.zeros((3, 4)))) == 1.0


def test_dormant_fraction_thresholds():
    assert float(dormant_fraction(H)) == 0.25  # tau = 0.1: only the dead unit
    assert float(dormant_fraction(H, tau=0.0)) == 0.25
    assert float(dormant_fraction(H, tau=0.5)) == 0.5  # + unit 2 (4/9)
    assert float(dormant_fraction(H, tau=0.9)) == 0.75  # + unit 3 (8/9)
    assert float(dormant_fraction(_conv(), tau=0.3)) == pytest.approx(2 / 3)
    # a score of exactly tau counts as dormant (s <= tau): E|h| = [1.45, 1.45, 0.1].
    h = np.array([[1.45, 1.45, 0.1]])
    assert float(dormant_fraction(h, tau=0.1)) == pytest.approx(1 / 3)


def test_inactive_fraction():
    h = np.zeros((200, 3))
    h[0, 0] = 5.0  # active on 0.5% of inputs -> inactive at p = 1%
    h[:3, 1] = 1.0  # 1.5% -> active
    h[:, 2] = 0.3
    assert float(inactive_fraction(h)) == pytest.approx(1 / 3)
    assert float(inactive_fraction(h, p=0.02)) == pytest.approx(2 / 3)
    assert float(inactive_fraction(h, p=0.0)) == 0.0
    # conv: channel 1 is nonzero at 1 of 8 positions (12.5%); channel 0 never.
    assert float(inactive_fraction(_conv(), p=0.1)) == pytest.approx(1 / 3)
    assert float(inactive_fraction(_conv(), p=0.2)) == pytest.approx(2 / 3)
    # dead implies inactive
    assert float(inactive_fraction(H)) >= float(dead_fraction(H))


def test_linear_fraction():
    pre = np.array([[1.0, -1.0, 2.0], [0.5, 2.0, 0.0], [3.0, 1.0, 1.0]])
    assert float(linear_fraction(pre)) == pytest.approx(1 / 3)  # 0 is not > 0
    conv = np.ones((2, 3, 3, 4))
    conv[1, 2, 2, 0] = -0.1
    assert float(linear_fraction(conv)) == 0.75


def test_saturated_fraction_tanh():
    h = np.array([[0.995, -0.999, 0.95], [-0.995, -0.9999, -0.92]])
    assert float(saturated_fraction(h, "tanh")) == pytest.approx(2 / 3)
    assert float(saturated_fraction(h, "tanh", threshold=0.9)) == 1.0
    conv = np.tanh(np.full((2, 2, 2, 2), 10.0))
    conv[0, 0, 0, 1] = 0.0
    assert float(saturated_fraction(conv, "tanh")) == 0.5


def test_saturated_fraction_sigmoid():
    h = np.array([[0.995, 0.005, 0.95], [0.001, 0.999, 0.92]])
    assert float(saturated_fraction(h, "sigmoid")) == pytest.approx(2 / 3)
    assert float(saturated_fraction(h, "sigmoid", threshold=0.9)) == 1.0
    assert float(saturated_fraction(np.full((3, 2), 0.5), "sigmoid")) == 0.0
    with pytest.raises(ValueError):
        saturated_fraction(h, "relu")


def test_conv_equals_flattened_dense():
    h = np.random.default_rng(0).normal(size=(3, 4, 4, 5))
    h = np.maximum(h, 0.0) * (np.arange(5) > 1)
    flat = h.reshape(-1, 5)
    for fn in (dead_fraction, dormant_fraction, inactive_fraction, linear_fraction):
        assert float(fn(h)) == float(fn(flat))
    np.testing.assert_allclose(dormant_scores(h), dormant_scores(flat), rtol=1e-6)


def test_vmap_over_seeds_equals_loop_and_jit():
    rng = np.random.default_rng(1)
    hs = np.maximum(rng.normal(size=(3, 16, 2, 2, 6)), 0.0)
    hs[0, ..., 0] = 0.0
    hs[1, ..., 1:3] = 0.0
    hs[2, :, 0, 0, 4] = 0.0
    fns = [
        dead_fraction,
        dormant_scores,
        lambda h: dormant_fraction(h, tau=0.1),
        lambda h: inactive_fraction(h, p=0.3),
        linear_fraction,
        lambda h: saturated_fraction(jnp.tanh(3 * h), "tanh", threshold=0.9),
    ]
    for fn in fns:
        batched = jax.jit(jax.vmap(fn))(hs)
        looped = np.stack([np.asarray(fn(h)) for h in hs])
        np.testing.assert_allclose(batched, looped, rtol=1e-6)
