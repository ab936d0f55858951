"""The agent's networks, and continual backprop on both of them with the PPO options."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopkit.methods import CBPConfig, Context, compose
from lopkit.rl import ActorCritic, ActorCriticConfig

UNITS = 8


def _agent(discrete=False):
    return ActorCritic(
        ActorCriticConfig(observations=3, actions=2, discrete=discrete, hidden=(UNITS, UNITS))
    )


def test_policy_and_value_nets_with_named_units_and_lecun_init():
    net = _agent()
    names = [layer.name for layer in net.unit_layers]
    assert names == ["policy/hidden_0", "policy/hidden_1", "value/hidden_0", "value/hidden_1"]
    params = net.init(jax.random.PRNGKey(0))
    assert set(params) == {
        "policy/hidden_0", "policy/hidden_1", "policy/output",
        "value/hidden_0", "value/hidden_1", "value/output", "log_std",
    }  # fmt: skip
    for name, fan_in in (
        ("policy/hidden_0", 3),
        ("policy/hidden_1", UNITS),
        ("value/output", UNITS),
    ):
        w = np.asarray(params[name]["w"])
        bound = math.sqrt(3.0 / fan_in)  # LeCun-uniform, no activation gain
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
        assert not np.asarray(params[name]["b"]).any()
    np.testing.assert_array_equal(params["log_std"], 0.0)
    out, trace = net.apply(params, jnp.ones((5, 3)))
    assert out["policy"].shape == (5, 2) and out["value"].shape == (5,)
    assert [h.shape for h in trace.hidden] == [(5, UNITS)] * 4
    # the two networks are separate: changing the value net leaves the policy alone
    other = {
        **params,
        "value/hidden_0": {
            "w": params["value/hidden_0"]["w"] * 2,
            "b": params["value/hidden_0"]["b"],
        },
    }
    out2, _ = net.apply(other, jnp.ones((5, 3)))
    np.testing.assert_array_equal(out["policy"], out2["policy"])
    assert not np.allclose(out["value"], out2["value"])
    assert "log_std" not in _agent(discrete=True).init(jax.random.PRNGKey(0))


@pytest.mark.parametrize("reset_moments", [False, True])
def test_cbp_replaces_units_in_both_nets_with_its_bookkeeping(reset_moments):
    net = _agent()
    config = CBPConfig(
        replacement_rate=1.0 / UNITS,  # exactly one replacement per layer per step
        maturity_threshold=0,
        accumulate=True,
        next_bias_correction=True,
        reset_optimizer_moments=reset_moments,
    )
    method = compose(["cbp"], (config,), Context(net, 1e-3))
    rule = method.unit_rules[0]
    params = net.init(jax.random.PRNGKey(1))
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # nonzero biases
    opt = optax.adam(1e-3)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    _, opt_state = opt.update(grads, opt.init(params), params)  # nonzero moments
    x = jax.random.normal(jax.random.PRNGKey(2), (16, 3))
    _, trace = net.apply(params, x)
    state = rule.init(params)
    new_state, new_params, new_opt = rule.apply(
        state, params, opt_state, trace, jax.random.PRNGKey(3), jnp.int32(0)
    )
    mu, new_mu = opt_state[0].mu, new_opt[0].mu
    chosen = {}
    for i, layer in enumerate(net.unit_layers):
        h = np.asarray(trace.hidden[i])
        w_out = np.asarray(params[layer.outgoing[0]]["w"])
        utility = (1 - 0.99) * np.abs(h).mean(0) * np.abs(w_out).sum(1)
        chosen[layer.name] = int(np.argmin(utility))  # the lowest-utility unit is replaced
    for i, layer in enumerate(net.unit_layers):
        name, nxt = layer.incoming[0], layer.outgoing[0]
        unit, h = chosen[name], np.asarray(trace.hidden[i])
        net_name, _, depth = name.partition("/hidden_")
        before = chosen.get(f"{net_name}/hidden_{int(depth) - 1}")  # its input unit reset
        after = chosen.get(nxt)  # the next layer's own replaced unit (its bias goes to 0)
        st = new_state[i]
        assert int(st["replaced"]) == 1
        assert int(st["age"][unit]) == 0 and float(st["utility"][unit]) == 0.0
        assert (np.delete(np.asarray(st["age"]), unit) == 1).all()
        w_in, old_in = np.asarray(new_params[name]["w"]), np.asarray(params[name]["w"]).copy()
        assert not np.allclose(w_in[:, unit], old_in[:, unit])
        assert np.abs(w_in[:, unit]).max() <= layer.init_bound
        if before is not None:
            old_in[before] = 0.0  # the outgoing row of the previous layer's replaced unit
        np.testing.assert_array_equal(np.delete(w_in, unit, 1), np.delete(old_in, unit, 1))
        assert float(new_params[name]["b"][unit]) == 0.0
        row = np.asarray(new_params[nxt]["w"])[unit]
        if after is not None:
            row = np.delete(row, after)  # the next layer's replaced unit has fresh weights
        np.testing.assert_array_equal(row, 0.0)
        # next-layer bias: + w_out[unit] · (bias-corrected mean activation = this step's mean)
        w_out = np.asarray(params[nxt]["w"])
        expected = np.asarray(params[nxt]["b"]) + w_out[unit] * h[:, unit].mean()
        if after is not None:
            expected[after] = 0.0
        np.testing.assert_allclose(np.asarray(new_params[nxt]["b"]), expected, rtol=1e-5, atol=1e-6)
        moment = np.asarray(new_mu[name]["w"])[:, unit]
        if reset_moments:
            np.testing.assert_array_equal(moment, 0.0)
        else:
            np.testing.assert_array_equal(moment, np.asarray(mu[name]["w"])[:, unit])
