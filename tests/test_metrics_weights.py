"""Weight-space metrics and optimizer-moment norms on tiny hand-written pytrees."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopkit.metrics import (
    adam_moment_norms,
    distance_from_init,
    grad_norm,
    param_norm,
    weight_magnitude,
    weight_magnitude_per_layer,
)

pytestmark = pytest.mark.unit  # the sub-minute tier (make test-unit): pure functions

PARAMS = {
    "dense_0": {"w": np.array([[1.0, -2.0], [3.0, -4.0]]), "b": np.array([10.0, -10.0])},
    "out": {"w": np.array([[0.5], [-0.5]]), "b": np.array([100.0])},
}


def test_weight_magnitude_excludes_biases_by_default():
    assert float(weight_magnitude(PARAMS)) == pytest.approx(11 / 6)
    assert float(weight_magnitude(PARAMS, include_biases=True)) == pytest.approx(131 / 9)


def test_weight_magnitude_is_pooled_and_counts_conv_kernels():
    params = [{"kernel": np.full((3, 3, 1, 2), 2.0), "bias": np.ones(2)}, {"w": np.zeros((2, 2))}]
    # 18 weights of 2 and 4 of 0: pooled mean 36/22 (a mean of layer means would be 1)
    assert float(weight_magnitude(params)) == pytest.approx(36 / 22)
    per_layer = weight_magnitude_per_layer(params)
    assert set(per_layer) == {"0/kernel", "1/w"}
    assert float(per_layer["0/kernel"]) == 2.0
    assert float(weight_magnitude({"b": np.ones(3)})) == 0.0  # no weights at all


def test_weight_magnitude_per_layer():
    per_layer = weight_magnitude_per_layer(PARAMS)
    assert {k: float(v) for k, v in per_layer.items()} == {"dense_0/w": 2.5, "out/w": 0.5}
    assert set(weight_magnitude_per_layer(PARAMS, include_biases=True)) == {
        "dense_0/w",
        "dense_0/b",
        "out/w",
        "out/b",
    }


def test_param_norm_distance_and_grad_norm():
    assert float(param_norm(PARAMS)) == pytest.approx(np.sqrt(30.5 + 200 + 10000), rel=1e-6)
    params0 = jax.tree_util.tree_map(np.copy, PARAMS)
    params0["dense_0"]["w"] = params0["dense_0"]["w"] - 1.0  # diff 1 on 4 entries
    params0["out"]["b"] = params0["out"]["b"] + 3.0  # diff 3 on 1 entry
    assert float(distance_from_init(PARAMS, params0)) == pytest.approx(np.sqrt(13.0))
    assert float(distance_from_init(PARAMS, PARAMS)) == 0.0
    assert float(grad_norm({"a": np.array([3.0]), "b": np.array([[4.0]])})) == 5.0


def test_weight_metrics_vmap_over_seeds_equals_loop():
    rng = np.random.default_rng(0)
    stacked = {
        "l0": {"w": rng.normal(size=(3, 4, 5)), "b": rng.normal(size=(3, 5))},
        "l1": {"w": rng.normal(size=(3, 5, 2))},
    }
    stacked0 = jax.tree_util.tree_map(lambda x: x + rng.normal(size=x.shape), stacked)
    seeds = [jax.tree_util.tree_map(lambda x, i=i: x[i], stacked) for i in range(3)]
    seeds0 = [jax.tree_util.tree_map(lambda x, i=i: x[i], stacked0) for i in range(3)]
    for fn in (weight_magnitude, param_norm, grad_norm):
        np.testing.assert_allclose(
            jax.jit(jax.vmap(fn))(stacked), [fn(p) for p in seeds], rtol=1e-6
        )
    np.testing.assert_allclose(
        jax.vmap(distance_from_init)(stacked, stacked0),
        [distance_from_init(p, q) for p, q in zip(seeds, seeds0, strict=True)],
        rtol=1e-6,
    )
    batched = jax.vmap(weight_magnitude_per_layer)(stacked)
    for i, p in enumerate(seeds):
        for name, value in weight_magnitude_per_layer(p).items():
            assert float(batched[name][i]) == pytest.approx(float(value), rel=1e-6)


class _Params(NamedTuple):
    nu: jnp.ndarray  # a parameter that happens to be called "nu"
    w: jnp.ndarray


def _one_adam_step(opt, params, grads):
    state = opt.init(params)
    _, state = opt.update(grads, state, params)
    return state


def test_adam_moment_norms_found_by_name_in_a_chain():
    params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    grads = {"w": jnp.array([[1.0, 2.0], [0.0, -2.0]]), "b": jnp.array([4.0, 0.0])}
    opt = optax.chain(optax.add_decayed_weights(0.0), optax.adam(1e-3, b1=0.9, b2=0.999))
    norms = adam_moment_norms(_one_adam_step(opt, params, grads))
    # after one step: mu = 0.1 g, nu = 0.001 g^2; ||g|| = 5, ||g^2|| = sqrt(1+16+16+256)
    assert float(norms["adam_mu_norm"]) == pytest.approx(0.5, rel=1e-6)
    assert float(norms["adam_nu_norm"]) == pytest.approx(0.001 * np.sqrt(289.0), rel=1e-5)


def test_adam_moment_norms_nested_and_param_named_nu():
    params = _Params(nu=jnp.ones(3), w=jnp.ones((2, 3)))
    grads = _Params(nu=jnp.full(3, 2.0), w=jnp.zeros((2, 3)))
    opt = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3, b1=0.5, b2=0.75)
    norms = adam_moment_norms(_one_adam_step(opt, params, grads))
    # mu = 0.5 g -> ||mu|| = sqrt(3); nu = 0.25 g^2 -> ||nu|| = sqrt(3); the parameter
    # called "nu" inside the mu tree must be counted as mu, not nu.
    assert float(norms["adam_mu_norm"]) == pytest.approx(np.sqrt(3.0), rel=1e-6)
    assert float(norms["adam_nu_norm"]) == pytest.approx(np.sqrt(3.0), rel=1e-6)


def test_adam_moment_norms_rejects_state_without_moments():
    with pytest.raises(ValueError):
        adam_moment_norms(optax.sgd(0.1, momentum=0.9).init({"w": jnp.ones(2)}))


def test_adam_moment_norms_vmap_over_seeds():
    opt = optax.adam(1e-3)
    gs = jnp.arange(6.0).reshape(3, 2)
    states = jax.vmap(lambda g: _one_adam_step(opt, {"w": jnp.ones(2)}, {"w": g}))(gs)
    batched = jax.vmap(adam_moment_norms)(states)
    for i, g in enumerate(gs):
        alone = adam_moment_norms(_one_adam_step(opt, {"w": jnp.ones(2)}, {"w": g}))
        assert float(batched["adam_mu_norm"][i]) == pytest.approx(float(alone["adam_mu_norm"]))
        assert float(batched["adam_nu_norm"][i]) == pytest.approx(float(alone["adam_nu_norm"]))
