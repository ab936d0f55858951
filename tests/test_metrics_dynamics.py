"""The metrics of issue 27 on tiny arrays, against values computed by hand: churn,
relative update size (effective learning rate), isometry gap, feature norm, the shift of
pre-activations, duplicate units, dormancy at τ 0.025 and GraMa's gradient scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit import metrics
from lopkit.nets import MLP, MLPConfig


def test_churn_is_the_mean_over_examples_of_the_squared_output_distance():
    out = np.array([[1.0, 2.0], [0.0, 0.0]])
    prev = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert float(metrics.churn(out, prev)) == pytest.approx((5 + 25) / 2)
    assert float(metrics.churn(out, out)) == 0.0
    # a vector output [batch] is one output per example
    assert float(metrics.churn(np.array([1.0, 3.0]), np.array([0.0, 0.0]))) == pytest.approx(5.0)


def test_relative_update_and_the_per_layer_effective_learning_rate():
    assert float(metrics.relative_update([[3.0, 4.0]], [[0.0, 4.0]])) == pytest.approx(3 / 5)
    assert float(metrics.relative_update([[1.0]], [[1.0]])) == 0.0
    assert float(metrics.relative_update([[0.0]], [[0.0]])) == 0.0
    assert float(metrics.relative_update([[1.0]], [[0.0]])) == 1.0  # from a zero init
    assert np.isinf(metrics.relative_update([[0.0]], [[1.0]]))  # set to zero
    prev = {
        "a": {"w": jnp.array([[0.0, 0.0], [0.0, 4.0]]), "b": jnp.zeros(2)},
        "c": {"w": jnp.array([[1.0, 0.0], [0.0, 0.0]]), "b": jnp.zeros(2)},
    }
    now = {
        "a": {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "b": jnp.full(2, 100.0)},  # biases ignored
        "c": {"w": jnp.array([[2.0, 0.0], [0.0, 0.0]]), "b": jnp.zeros(2)},
    }
    got = metrics.effective_lr_per_layer(now, prev)
    assert set(got) == {"a", "c", ""}
    assert float(got["a"]) == pytest.approx(3 / 5)
    assert float(got["c"]) == pytest.approx(1 / 2)
    # pooled over all weights: ‖ΔW‖ = √(9 + 1), ‖W‖ = √(9 + 16 + 4); not the mean 0.55
    assert float(got[""]) == pytest.approx(np.sqrt(10 / 29))


def test_isometry_gap_is_zero_for_semi_orthogonal_matrices_on_their_smaller_side():
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert float(metrics.isometry_gap(rot)) == pytest.approx(0.0, abs=1e-6)
    cols = np.eye(3)[:, :2]  # [3, 2]: orthonormal columns
    assert float(metrics.isometry_gap(cols)) == pytest.approx(0.0, abs=1e-7)
    assert float(metrics.isometry_gap(cols.T)) == pytest.approx(0.0, abs=1e-7)  # [2, 3]: rows
    # 2·I: G = 4·I, ‖3·I_2‖_F / ‖I_2‖_F = 3√2 / √2 = 3
    assert float(metrics.isometry_gap(2 * np.eye(2))) == pytest.approx(3.0)
    # a zero matrix is ‖I‖/‖I‖ = 1 away
    assert float(metrics.isometry_gap(np.zeros((4, 3)))) == pytest.approx(1.0)
    # a conv kernel [1, 1, 2, 2] = I is read as [kh·kw·c_in, c_out] = I
    assert float(metrics.isometry_gap(np.eye(2).reshape(1, 1, 2, 2))) == pytest.approx(0.0)
    per = metrics.isometry_gap_per_layer(
        {"h": {"w": 2 * jnp.eye(2), "b": jnp.ones(2)}, "o": {"w": jnp.eye(2)}}
    )
    assert {k: round(float(v), 5) for k, v in per.items()} == {"h": 3.0, "o": 0.0, "": 1.5}


def test_feature_norm_is_the_mean_norm_of_one_examples_features():
    assert float(metrics.feature_norm([[3.0, 4.0], [0.0, 0.0]])) == pytest.approx(2.5)
    conv = np.array([[3.0, 4.0], [6.0, 8.0]]).reshape(2, 1, 1, 2)  # [batch, H, W, C]
    assert float(metrics.feature_norm(conv)) == pytest.approx(7.5)
    conv2 = np.ones((1, 2, 2, 1))  # one example: the norm over H × W × C = √4
    assert float(metrics.feature_norm(conv2)) == pytest.approx(2.0)


def test_preactivation_shift_against_init():
    got = metrics.preactivation_shift([[2.0, 6.0]], [[1.0, 3.0]])
    assert float(got["preactivation_mean_shift"]) == pytest.approx(4 - 2)
    assert float(got["preactivation_std_ratio"]) == pytest.approx(2 / 1)
    same = metrics.preactivation_shift([[5.0, 5.0]], [[5.0, 5.0]])  # both constant
    assert float(same["preactivation_std_ratio"]) == 1.0
    assert float(same["preactivation_mean_shift"]) == 0.0
    grown = metrics.preactivation_shift([[1.0, 2.0]], [[0.0, 0.0]])
    assert np.isinf(grown["preactivation_std_ratio"])


def test_duplicate_fraction_counts_correlated_units_and_never_constant_ones():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    d = np.array([1.0, -1.0, 1.0, -1.0])  # ρ(a, d) = −0.5 / (√1.25 · 1) = −0.447
    h = np.stack([a, 2 * a + 1, -a, d, np.full(4, 5.0), np.full(4, 5.0)], axis=1)
    # a, 2a + 1 and −a are duplicates; d is not; the two constant units are not (no ρ)
    assert float(metrics.duplicate_fraction(h)) == pytest.approx(3 / 6)
    assert float(metrics.duplicate_fraction(h, threshold=0.4)) == pytest.approx(4 / 6)
    assert float(metrics.duplicate_fraction(h, threshold=0.45)) == pytest.approx(3 / 6)
    assert float(metrics.duplicate_fraction(np.zeros((4, 3)))) == 0.0
    assert float(metrics.duplicate_fraction(np.eye(3))) == 0.0  # ρ = −0.5 between any two


def test_dormant_fraction_at_both_redo_thresholds():
    h = np.array([[1.0, 0.05, 0.02, 2.93]] * 3)  # layer mean of E|h| = 1: scores = E|h|
    assert float(metrics.dormant_fraction(h, 0.1)) == pytest.approx(2 / 4)
    assert float(metrics.dormant_fraction(h, 0.025)) == pytest.approx(1 / 4)


def test_grama_scores_normalize_gradient_magnitudes_by_the_layer_mean():
    g = np.array([[1.0, 0.0, -2.0], [3.0, 0.0, 2.0]])  # E|g| = [2, 0, 2], layer mean 4/3
    np.testing.assert_allclose(metrics.grama_scores(g), [1.5, 0.0, 1.5], rtol=1e-6)
    assert float(metrics.grama_dormant_fraction(g)) == pytest.approx(1 / 3)
    assert float(metrics.grama_dormant_fraction(np.zeros((2, 3)))) == 1.0


def _tiny_net():
    """Inputs > 0. hidden unit 0: z = x₀ + x₁; unit 1: z = −(x₀ + x₁) < 0, dead; unit 2:
    like unit 0, but its outgoing weight is 1e-3 (alive, active, barely used)."""
    net = MLP(MLPConfig(sizes=(2, 3, 1)))
    params = {
        "hidden_0": {"w": jnp.array([[1.0, -1.0, 1.0], [1.0, -1.0, 1.0]]), "b": jnp.zeros(3)},
        "output": {"w": jnp.array([[1.0], [1.0], [1e-3]]), "b": jnp.zeros(1)},
    }
    return net, params


def test_feature_gradients_are_the_loss_gradient_at_the_traced_values():
    net, params = _tiny_net()
    x = jnp.array([[1.0, 2.0], [0.5, 0.5], [2.0, 1.0]])
    y = jnp.array([[1.0], [0.0], [2.0]])

    def fn(p, x, y):
        out, trace = net.apply(p, x)
        return jnp.mean((out - y) ** 2), trace.pre

    (g,) = metrics.feature_gradients(fn, params, x, y)
    out, trace = net.apply(params, x)
    delta = 2 * (out - y) / 3  # ∂L/∂out of the mean over 3 examples
    by_hand = delta * params["output"]["w"][:, 0] * (trace.pre[0] > 0)  # ∂L/∂z = δ w φ'(z)
    np.testing.assert_allclose(g, by_hand, rtol=1e-6)
    assert np.all(g[:, 1] == 0)  # the dead unit
    # GraMa sees the dead unit and the barely used one; activations see only the dead one
    assert float(metrics.grama_dormant_fraction(g)) == pytest.approx(2 / 3)
    assert float(metrics.dormant_fraction(trace.hidden[0])) == pytest.approx(1 / 3)

    # at the outputs h instead, the dead unit receives the next layer's gradient: not 0
    def at_outputs(p, x, y):
        out, trace = net.apply(p, x)  # one forward pass: the loss is computed from trace.hidden
        return jnp.mean((out - y) ** 2), trace.hidden

    (gh,) = metrics.feature_gradients(at_outputs, params, x, y)
    np.testing.assert_allclose(gh[:, 1], delta[:, 0] * 1.0, rtol=1e-6)


def test_feature_gradients_under_jit_and_vmap_equal_the_plain_call():
    net = MLP(MLPConfig(sizes=(3, 4, 5, 2)))
    params = net.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    y = jax.random.normal(jax.random.PRNGKey(2), (6, 2))

    def fn(p, x, y):
        out, trace = net.apply(p, x)
        return jnp.mean((out - y) ** 2), trace.hidden

    plain = metrics.feature_gradients(fn, params, x, y)
    two = jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a]), params)
    mapped = jax.jit(jax.vmap(lambda p: metrics.feature_gradients(fn, p, x, y)))(two)
    for a, b in zip(plain, mapped, strict=True):
        np.testing.assert_allclose(b[0], a, rtol=1e-6)
    # the gradient at the last hidden features is δ Wᵀ (finite differences would agree too)
    out, _ = net.apply(params, x)
    np.testing.assert_allclose(
        plain[1], (2 * (out - y) / out.size) @ params["output"]["w"].T, rtol=1e-5, atol=1e-8
    )
