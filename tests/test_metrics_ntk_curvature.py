"""Empirical NTK, sharpness and the plasticity probe on models with known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopkit.metrics import ntk_gram, ntk_summary, plasticity_probe, sharpness

pytestmark = pytest.mark.unit  # the sub-minute tier (make test-unit): pure functions


def _linear(params, x):
    """f(x) = x W + b: [batch, d] -> [batch, outputs]."""
    return x @ params["w"] + params["b"]


def _linear_params(d, outputs, seed=0):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(d, outputs))), "b": jnp.zeros(outputs)}


def test_ntk_of_single_output_linear_model_is_xxt_plus_one():
    # grad_w f(x) = x, grad_b f(x) = 1  =>  K = X X^T + 1 (no width scaling)
    x = np.random.default_rng(1).normal(size=(5, 3))
    K = ntk_gram(_linear, _linear_params(3, 1), x)
    np.testing.assert_allclose(K, x @ x.T + 1.0, rtol=1e-5, atol=1e-5)


def test_ntk_sums_over_outputs():
    # each of the O outputs contributes X X^T + 1, independently of the weights
    x = np.random.default_rng(2).normal(size=(4, 3))
    K = ntk_gram(_linear, _linear_params(3, 3), x)
    np.testing.assert_allclose(K, 3.0 * (x @ x.T + 1.0), rtol=1e-5, atol=1e-5)


def test_ntk_of_a_nonlinear_model_matches_explicit_jacobians():
    def mlp(p, x):
        return jnp.tanh(x @ p["w1"]) @ p["w2"]

    rng = np.random.default_rng(3)
    p = {"w1": jnp.asarray(rng.normal(size=(3, 4))), "w2": jnp.asarray(rng.normal(size=(4, 2)))}
    x = jnp.asarray(rng.normal(size=(5, 3)))
    J = jax.jacrev(lambda q: mlp(q, x))(p)  # leaves [batch, outputs, *shape]
    J = jnp.concatenate([j.reshape(5, 2, -1) for j in jax.tree_util.tree_leaves(J)], axis=-1)
    np.testing.assert_allclose(
        ntk_gram(mlp, p, x), jnp.einsum("iop,jop->ij", J, J), rtol=1e-5, atol=1e-5
    )


def test_ntk_summary_hand_values():
    s = ntk_summary(np.diag([4.0, 1.0]))
    assert int(s["ntk_rank"]) == 2
    assert float(s["ntk_condition"]) == pytest.approx(4.0)
    assert float(s["ntk_offdiag_ratio"]) == 0.0
    s = ntk_summary(np.array([[2.0, 1.0], [1.0, 2.0]]))  # eigenvalues 3, 1
    assert float(s["ntk_condition"]) == pytest.approx(3.0, rel=1e-6)
    assert float(s["ntk_offdiag_ratio"]) == pytest.approx(0.5)
    s = ntk_summary(np.ones((3, 3)))  # rank one; condition over positive eigenvalues
    assert int(s["ntk_rank"]) == 1
    assert float(s["ntk_condition"]) == pytest.approx(1.0, rel=1e-5)
    assert float(s["ntk_offdiag_ratio"]) == pytest.approx(1.0)
    s = ntk_summary(np.zeros((3, 3)))
    assert int(s["ntk_rank"]) == 0
    assert float(s["ntk_condition"]) == np.inf
    assert float(s["ntk_offdiag_ratio"]) == 0.0


def test_ntk_vmap_over_seeds_equals_loop():
    x = np.random.default_rng(4).normal(size=(4, 3))

    def tanh_net(p, x):
        return jnp.tanh(_linear(p, x))

    ps = [_linear_params(3, 2, seed) for seed in range(3)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ps)
    batched = jax.jit(jax.vmap(lambda p: ntk_gram(tanh_net, p, x)))(stacked)
    looped = np.stack([ntk_gram(tanh_net, p, x) for p in ps])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-6)
    summary = jax.vmap(ntk_summary)(batched)
    assert summary["ntk_rank"].shape == (3,)


def _quadratic(A):
    def loss_fn(params, batch):
        theta = jnp.concatenate([params["a"], params["b"]])
        return 0.5 * theta @ A @ theta

    return loss_fn


def test_sharpness_of_quadratic_is_top_eigenvalue():
    rng = np.random.default_rng(5)
    m = rng.normal(size=(6, 6))
    A = m @ m.T / 6 + 0.1 * np.eye(6)  # random SPD
    params = {"a": jnp.asarray(rng.normal(size=4)), "b": jnp.asarray(rng.normal(size=2))}
    lam = sharpness(_quadratic(jnp.asarray(A)), params, None, jax.random.key(0), iters=100)
    assert float(lam) == pytest.approx(np.linalg.eigvalsh(A)[-1], rel=1e-4)


def test_sharpness_known_spectrum_jit_and_vmap():
    q, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(6, 6)))
    A = jnp.asarray(q @ np.diag([10.0, 5.0, 3.0, 2.0, 1.0, 0.5]) @ q.T)
    loss_fn = _quadratic(A)
    params = {"a": jnp.ones(4), "b": jnp.ones(2)}
    fn = jax.jit(lambda p, k: sharpness(loss_fn, p, None, k))  # iters=20: error ~ 0.5^40
    keys = jax.random.split(jax.random.key(1), 3)
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x, -x]), params)
    batched = jax.vmap(fn)(stacked, keys)
    np.testing.assert_allclose(batched, 10.0, rtol=1e-5)


def _regression_task(seed, k=10, batch=8, d=3):
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=(d, 1))
    x = rng.normal(size=(k + 1, batch, d))
    y = x @ w_true + 0.5
    batches = (jnp.asarray(x[:k]), jnp.asarray(y[:k]))
    return batches, (jnp.asarray(x[k]), jnp.asarray(y[k]))


def _mse(params, batch):
    x, y = batch
    return jnp.mean((_linear(params, x) - y) ** 2)


def test_plasticity_probe_zero_with_zero_step_size():
    batches, eval_batch = _regression_task(7)
    params = _linear_params(3, 1)
    for opt in (optax.sgd(0.0), optax.adam(0.0)):
        assert float(plasticity_probe(_mse, params, opt, batches, eval_batch)) == 0.0


def test_plasticity_probe_positive_when_learning():
    batches, eval_batch = _regression_task(7)
    params = _linear_params(3, 1)
    probe = plasticity_probe(_mse, params, optax.sgd(0.1), batches, eval_batch)
    assert 0.5 < float(probe) <= 1.0
    # params themselves are untouched (the probe trains a copy)
    np.testing.assert_array_equal(params["w"], _linear_params(3, 1)["w"])
    # hand check of one SGD step on the evaluation batch itself
    one = jax.tree_util.tree_map(lambda a: a[None], eval_batch)
    g = jax.grad(_mse)(params, eval_batch)
    stepped = jax.tree_util.tree_map(lambda p, d: p - 0.1 * d, params, g)
    expected = 1.0 - _mse(stepped, eval_batch) / _mse(params, eval_batch)
    got = plasticity_probe(_mse, params, optax.sgd(0.1), one, eval_batch)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_plasticity_probe_vmap_over_seeds_equals_loop():
    batches, eval_batch = _regression_task(8)
    ps = [_linear_params(3, 1, seed) for seed in range(3)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ps)
    opt = optax.adam(0.05)
    fn = jax.jit(lambda p: plasticity_probe(_mse, p, opt, batches, eval_batch))
    np.testing.assert_allclose(jax.vmap(fn)(stacked), [fn(p) for p in ps], rtol=1e-5, atol=1e-6)
