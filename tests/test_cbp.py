"""Continual backprop's bookkeeping, checked by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopkit._experiment import make_experiment
from lopkit.benchmarks import get_benchmark
from lopkit.methods import (
    CBPConfig,
    Context,
    compose,
    contribution,
    parse_method,
    remedy_configs,
    select_replacements,
)
from lopkit.methods._cbp import replacement_count
from lopkit.nets import MLP, MLPConfig


def test_replacement_count_follows_rate_times_eligible_with_fraction_carried():
    config = CBPConfig(replacement_rate=0.3, maturity_threshold=10, accumulate=True)
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
    config = CBPConfig(replacement_rate=1.0, maturity_threshold=1, decay_rate=0.9, accumulate=True)
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
    # adaptable (gnt.py): mean|h − ĥ| · mean|w_out| / mean|w_in|; ĥ = (1, 2): mean|h − ĥ|
    # = (1, 1), mean|w_out| = (0.5, 4), mean|w_in| = (2, 1.5)
    np.testing.assert_allclose(
        contribution(params, layer, h, adaptable=True, centre=jnp.array([1.0, 2.0])),
        [0.5 / 2, 4.0 / 1.5],
        rtol=1e-6,
    )


def test_replaced_unit_is_fresh_with_zero_outgoing_age_utility_and_moments():
    net = MLP(MLPConfig(sizes=(3, 4, 2)))
    config = CBPConfig(replacement_rate=1.0, maturity_threshold=5, accumulate=True)
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
    config = CBPConfig(replacement_rate=0.25, maturity_threshold=5, accumulate=True)
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


def _replaced(accumulate: str, seeds: int) -> np.ndarray:
    e = make_experiment(
        "scr",
        "cbp",
        {
            "cbp.replacement_rate": "0.01",
            "cbp.maturity_threshold": "0",
            "cbp.accumulate": accumulate,
        },
        seeds=seeds,
        steps=2000,
        bin_size=500,
        metrics=(),
        metrics_every=0,
    )
    program, _ = e.build()
    state = program.init(jnp.arange(seeds))
    state, _, _ = program.chunk(state, jnp.int32(0), 4)
    return np.asarray(state["learner"]["rules"][0][0]["replaced"])


def test_replacements_over_a_run_follow_the_rate():
    # maturity 0: every unit is always eligible, so after N steps ⌊ρ·n·N⌋ units were replaced
    # when the fraction is carried over; with a draw per step, ρ·n·N = 100 on average
    # (binomial, s.d. √(2000 · 0.05 · 0.95) ≈ 9.7 per seed)
    assert np.all(np.abs(_replaced("true", 2) - 0.01 * 5 * 2000) <= 1)
    drawn = _replaced("false", 8)
    assert abs(drawn.mean() - 100) < 4 * 9.7 / np.sqrt(8) and drawn.std() > 0


def test_official_draw_replaces_one_unit_with_probability_rate_times_eligible():
    """accumulate off (gnt.py's default): n = ρ·#eligible; n < 1 → one unit when a uniform
    draw is ≤ n, nothing carried; n ≥ 1 → ⌊n⌋."""
    eligible = jnp.array([True, True, False, True])  # 3 eligible
    count, pending = replacement_count(eligible, jnp.float32(0.5), 0.1, False, jnp.float32(0.29))
    assert float(count) == 1 and float(pending) == 0.5  # 0.29 ≤ 0.3; pending untouched
    count, _ = replacement_count(eligible, jnp.float32(0.0), 0.1, False, jnp.float32(0.31))
    assert float(count) == 0
    count, _ = replacement_count(eligible, jnp.float32(0.0), 0.5, False, jnp.float32(0.0))
    assert float(count) == 1  # n = 1.5 ≥ 1: ⌊n⌋, no draw
    count, _ = replacement_count(~eligible & False, jnp.float32(0.0), 0.1, False, jnp.float32(0))
    assert float(count) == 0  # nothing eligible: nothing, even for a draw of 0
    # over many draws the rate is n
    draws = jax.random.uniform(jax.random.PRNGKey(0), (20_000,))
    counts = jax.vmap(lambda d: replacement_count(eligible, jnp.float32(0), 0.1, False, d)[0])(
        draws
    )
    assert abs(float(counts.mean()) - 0.3) < 0.01


def test_one_official_step_by_hand():
    """One step of gnt.py's test_features + gen_new_features with the adaptable
    contribution, on a 2 → 3 → 1 net with one unit eligible and a draw that replaces."""
    net = MLP(MLPConfig(sizes=(2, 3, 1)))
    eta = 0.5
    config = CBPConfig(
        replacement_rate=0.5, maturity_threshold=1, decay_rate=eta,
        utility="adaptable_contribution", reset_optimizer_moments=False,
    )  # fmt: skip
    rule = compose(["cbp"], (config,), Context(net, 0.01)).unit_rules[0]
    params = {
        "hidden_0": {"w": jnp.array([[1.0, 2.0, -1.0], [-3.0, 2.0, 1.0]]), "b": jnp.zeros(3)},
        "output": {"w": jnp.array([[2.0], [1.0], [-4.0]]), "b": jnp.array([0.5])},
    }
    state = rule.init(params)
    state[0]["age"] = jnp.array([1, 5, 0])  # after +1: 2, 6, 1 → units 0 and 1 eligible
    state[0]["utility"] = jnp.array([0.2, 1.0, 0.0])
    state[0]["mean_activation"] = jnp.array([1.0, 2.0, 0.0])
    h = jnp.array([[2.0, 4.0, 1.0], [0.0, 2.0, 3.0]])
    trace = net.apply(params, jnp.zeros((2, 2)))[1]._replace(hidden=[h])
    # by hand, unit 0: age 2, c = 1 − 0.25 = 0.75; m = 0.5·1 + 0.5·1 = 1, ĥ = 4/3;
    # mean|h − ĥ| = (2/3 + 4/3)/2 = 1; y = 1 · |2| / mean(1, 3) = 1; u = 0.1 + 0.5 = 0.6,
    # û = 0.8. Unit 1: age 6, c = 63/64; m = 1 + 1.5 = 2.5, ĥ = 160/63; mean|h − ĥ| =
    # (|4 − 160/63| + |2 − 160/63|)/2 = (92/63 + 34/63)/2 = 1; y = 1 · 1 / 2 = 0.5;
    # u = 0.5 + 0.25 = 0.75, û = 0.75·64/63 ≈ 0.762 — the lower: unit 1 is replaced.
    # n = 0.5 · 2 = 1 ≥ 1 → one unit, no draw needed.
    new_state, new_params, _ = rule.apply(
        state, params, None, trace, jax.random.PRNGKey(0), jnp.int32(0)
    )
    st = jax.tree_util.tree_map(np.asarray, new_state[0])
    np.testing.assert_array_equal(st["age"], [2, 0, 1])
    np.testing.assert_allclose(st["utility"], [0.6, 0.0, 0.5 * 0.0 + 0.5 * _unit2(h)], rtol=1e-6)
    np.testing.assert_allclose(st["mean_activation"], [1.0, 0.0, 1.0], rtol=1e-6)
    assert int(st["replaced"]) == 1
    np.testing.assert_array_equal(new_params["output"]["w"][1], 0.0)
    np.testing.assert_array_equal(new_params["output"]["b"], [0.5])  # no bias correction
    np.testing.assert_array_equal(
        new_params["hidden_0"]["w"][:, [0, 2]], params["hidden_0"]["w"][:, [0, 2]]
    )


def _unit2(h):
    # unit 2: age 1, c = 0.5; m = 0.5 · 2 = 1, ĥ = 2; mean|h − ĥ| = (1 + 1)/2 = 1;
    # y = 1 · 4 / mean(1, 1) = 4
    return 4.0


def test_each_benchmark_defaults_to_its_official_cbp_config():
    """docs/remedies.md's table: scr as expr.py runs cfg/sgd/cbp/relu.json (maturity 10 —
    the file's "maturity_threshold" key is never read), permuted with "accumulate": true,
    ConvGnT/ResGnT accumulating, PPO drawing."""

    def cbp(benchmark, method="cbp"):
        names = parse_method(method)
        defaults = get_benchmark(benchmark).remedy_defaults_for(names)
        return dict(zip(names, remedy_configs(names, {}, defaults), strict=True))["cbp"]

    scr = cbp("scr")
    assert (scr.replacement_rate, scr.maturity_threshold, scr.decay_rate) == (1e-4, 10, 0.99)
    assert scr.utility == "adaptable_contribution" and not scr.accumulate
    assert scr.reset_optimizer_moments and not scr.next_bias_correction
    assert cbp("permuted").accumulate and cbp("permuted").maturity_threshold == 100
    assert cbp("binary").accumulate and cbp("binary").replacement_rate == 3e-4
    ci = cbp("class_incremental")
    assert ci.accumulate and ci.utility == "contribution" and ci.maturity_threshold == 1000
    ppo = cbp("control", "cbp+l2")
    assert not ppo.accumulate and not ppo.next_bias_correction and ppo.maturity_threshold == 10_000
