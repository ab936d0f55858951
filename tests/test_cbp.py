"""Continual backprop's bookkeeping, checked by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopkit._experiment import make_experiment
from lopkit.methods import CBPConfig, Context, compose, contribution, select_replacements
from lopkit.nets import MLP, MLPConfig


def test_replacement_count_follows_rate_times_eligible_with_fraction_carried():
    config = CBPConfig(replacement_rate=0.3, maturity_threshold=10)
    age = jnp.array([11, 12, 50, 3, 0])  # 3 eligible (age > 10)
    utility = jnp.ones(5)
    pending = jnp.zeros(())
    counts, pendings = [], []
    for _ in range(6):
        idx, active, pending = select_replacements(utility, age, pending, config, k=2)
        counts.append(int(active.sum()))
        pendings.append(float(pending))
    # r: 0.9 → 0 (0.9); 1.8 → 1 (0.8); 1.7 → 1 (0.7); 1.6 → 1; 1.5 → 1; 1.4 → 1
    assert counts == [0, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(pendings, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], atol=1e-5)


def test_lowest_bias_corrected_utility_among_eligible_is_chosen():
    config = CBPConfig(replacement_rate=1.0, maturity_threshold=1, decay_rate=0.9)
    # raw utilities: unit 0 lowest but immature; unit 1 raw 0.05 at age 2 → û = 0.05/0.19;
    # unit 2 raw 0.1 at age 100 → û ≈ 0.1; unit 3 raw 0.2 at age 100.
    utility = jnp.array([0.0, 0.05, 0.1, 0.2])
    age = jnp.array([1, 2, 100, 100])
    idx, active, _ = select_replacements(utility, age, jnp.zeros(()), config, k=1)
    assert int(idx[0]) == 2 and bool(active[0])


def test_contribution_utility_by_hand():
    net = MLP(MLPConfig(sizes=(2, 2, 1)))
    params = {
        "hidden_0": {"w": jnp.array([[1.0, -2.0], [3.0, 1.0]]), "b": jnp.zeros(2)},
        "output": {"w": jnp.array([[0.5], [-4.0]]), "b": jnp.zeros(1)},
    }
    h = jnp.array([[1.0, 0.0], [3.0, 2.0]])  # mean |h| = (2, 1)
    layer = net.unit_layers[0]
    np.testing.assert_allclose(contribution(params, layer, h, adaptable=False), [2 * 0.5, 1 * 4.0])
    # adaptable: divided by Σ|w_in| = (4, 3)
    np.testing.assert_allclose(
        contribution(params, layer, h, adaptable=True), [1.0 / 4, 4.0 / 3], rtol=1e-6
    )


def test_replaced_unit_is_fresh_with_zero_outgoing_age_utility_and_moments():
    net = MLP(MLPConfig(sizes=(3, 4, 2)))
    config = CBPConfig(replacement_rate=1.0, maturity_threshold=5)
    method = compose(["cbp"], (config,), Context(net, 0.01))
    rule = method.unit_rules[0]
    params = net.init(jax.random.PRNGKey(0))
    tx = optax.adam(0.01)
    opt_state = tx.update(jax.tree_util.tree_map(jnp.ones_like, params), tx.init(params), params)[1]
    state = rule.init(params)
    # units 0, 1, 3 mature with high utility; unit 2 mature with the lowest utility
    state[0]["age"] = jnp.array([10, 10, 10, 10])
    state[0]["utility"] = jnp.array([5.0, 5.0, 0.0, 5.0])
    state[0]["pending"] = jnp.array(0.3)  # + ρ·4 eligible = 4.3 → 4 replaced
    x = jnp.ones((1, 3))
    _, trace = net.apply(params, x)
    new_state, new_params, new_opt = rule.apply(
        state, params, opt_state, trace, jax.random.PRNGKey(7), jnp.int32(0)
    )
    # ρ = 1 and 4 eligible units: k = ⌈1·4⌉ = 4, so all four are replaced this step
    assert int(new_state[0]["replaced"]) == 4
    np.testing.assert_array_equal(new_state[0]["age"], 0)
    np.testing.assert_array_equal(new_state[0]["utility"], 0.0)
    np.testing.assert_array_equal(new_params["output"]["w"], 0.0)
    np.testing.assert_array_equal(new_params["hidden_0"]["b"], 0.0)
    bound = net.unit_layers[0].init_bound
    w_in = np.asarray(new_params["hidden_0"]["w"])
    assert np.all(np.abs(w_in) <= bound) and not np.allclose(w_in, params["hidden_0"]["w"])
    for moment in (new_opt[0].mu, new_opt[0].nu):
        np.testing.assert_array_equal(moment["hidden_0"]["w"], 0.0)
        np.testing.assert_array_equal(moment["output"]["w"], 0.0)
        assert np.all(np.asarray(moment["output"]["b"]) != 0.0)  # the output bias is no unit's


def test_only_the_chosen_unit_is_touched():
    net = MLP(MLPConfig(sizes=(3, 4, 2)))
    config = CBPConfig(replacement_rate=0.25, maturity_threshold=5)
    method = compose(["cbp"], (config,), Context(net, 0.01))
    rule = method.unit_rules[0]
    params = net.init(jax.random.PRNGKey(0))
    tx = optax.adam(0.01)
    opt_state = tx.update(jax.tree_util.tree_map(jnp.ones_like, params), tx.init(params), params)[1]
    state = rule.init(params)
    state[0]["age"] = jnp.array([10, 10, 10, 10])
    state[0]["utility"] = jnp.array([5.0, 5.0, 0.0, 5.0])
    state[0]["pending"] = jnp.array(0.0)  # + 0.25·4 = 1 → exactly one replacement
    _, trace = net.apply(params, jnp.ones((1, 3)))
    new_state, p, o = rule.apply(state, params, opt_state, trace, jax.random.PRNGKey(1), 0)
    p, o, params = jax.tree_util.tree_map(np.asarray, (p, o, params))
    np.testing.assert_array_equal(new_state[0]["age"], [11, 11, 0, 11])
    assert float(new_state[0]["utility"][2]) == 0.0 and float(new_state[0]["utility"][0]) > 0
    np.testing.assert_array_equal(p["output"]["w"][2], 0.0)
    np.testing.assert_array_equal(p["output"]["w"][[0, 1, 3]], params["output"]["w"][[0, 1, 3]])
    np.testing.assert_array_equal(
        p["hidden_0"]["w"][:, [0, 1, 3]], params["hidden_0"]["w"][:, [0, 1, 3]]
    )
    assert not np.allclose(p["hidden_0"]["w"][:, 2], params["hidden_0"]["w"][:, 2])
    before = jax.tree_util.tree_map(np.asarray, opt_state)
    for moment, old in ((o[0].mu, before[0].mu), (o[0].nu, before[0].nu)):
        np.testing.assert_array_equal(moment["hidden_0"]["w"][:, 2], 0.0)
        np.testing.assert_array_equal(
            moment["hidden_0"]["w"][:, [0, 1, 3]], old["hidden_0"]["w"][:, [0, 1, 3]]
        )
        np.testing.assert_array_equal(moment["output"]["w"][2], 0.0)
        np.testing.assert_array_equal(
            moment["output"]["w"][[0, 1, 3]], old["output"]["w"][[0, 1, 3]]
        )
        assert np.all(old["output"]["w"] != 0)
    assert int(o[0].count) == 1  # CBP leaves Adam's step count alone


def test_replacements_over_a_run_follow_the_rate():
    # maturity 0: every unit is always eligible, so after N steps ⌊ρ·n·N⌋ units were replaced.
    e = make_experiment(
        "scr",
        "cbp",
        {"cbp.replacement_rate": "0.01", "cbp.maturity_threshold": "0"},
        seeds=2,
        steps=2000,
        bin_size=500,
        metrics=(),
        metrics_every=0,
    )
    program, _ = e.build()
    state = program.init(jnp.arange(2))
    state, _, _ = program.chunk(state, jnp.int32(0), 4)
    replaced = np.asarray(state["learner"]["rules"][0][0]["replaced"])
    assert np.all(np.abs(replaced - 0.01 * 5 * 2000) <= 1)
