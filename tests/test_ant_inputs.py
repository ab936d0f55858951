"""The ant agent's input layer: the official 111 inputs (27 observed + 84 contact forces that
are always 0) by default, the 27 observed ones as an option (issue 25)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium")

from lopkit._experiment import make_experiment  # noqa: E402
from lopkit.benchmarks._ant import build  # noqa: E402
from lopkit.engine._probes import PROBES, ProbeInputs  # noqa: E402
from lopkit.methods import CBPConfig, Context, compose  # noqa: E402
from lopkit.rl import ActorCritic, ActorCriticConfig  # noqa: E402

OBSERVED, OFFICIAL = 27, 111  # gym Ant-v3: qpos[2:] 13 + qvel 14 (+ cfrc_ext 14 × 6 = 84)
FIRST = ("policy/hidden_0", "value/hidden_0")


def _agent(settings=None, version="v4"):
    """The ant benchmark's agent (the paper's [256, 256] nets) and its initial parameters."""
    e = make_experiment("ant", "backprop", {"version": version, **(settings or {})}, steps=2048)
    problem = build(e.config)
    net = problem.make_network(problem.network)
    return net, net.init(jax.random.PRNGKey(0))


def _weight_probe(params) -> dict[str, float]:
    none = dict.fromkeys(ProbeInputs._fields)
    rows = PROBES["weight_magnitude"].fn(ProbeInputs(**{**none, "params": params}))
    return {layer: float(v) for _, layer, v in rows}


@pytest.mark.parametrize(
    ("settings", "rows"),
    [
        ({}, OFFICIAL),
        ({"network_inputs": "official"}, OFFICIAL),
        ({"network_inputs": "observed"}, OBSERVED),
    ],
)
def test_the_first_layers_have_the_official_fan_in_by_default_and_the_observed_one_as_option(
    settings, rows
):
    net, params = _agent(settings)
    bound = math.sqrt(3.0 / rows)  # official lecun_init: U(±√(3 / in_features))
    probe = _weight_probe(params)
    for name in FIRST:
        w = np.asarray(params[name]["w"])
        assert w.shape == (rows, 256)
        assert 0.95 * bound < np.abs(w).max() <= bound
        # the official probe: weight.abs().mean() over all rows; U(±b) has E|w| = b / 2
        assert probe[name] == pytest.approx(bound / 2, rel=0.02)
        assert probe[name] == pytest.approx(float(np.abs(w).mean()), rel=1e-6)
    # CBP and ReDo re-draw a unit's incoming weights (all rows) from the same bound
    assert [u.init_bound for u in net.unit_layers if u.name in FIRST] == pytest.approx(
        [bound, bound]
    )


def test_v5_observes_its_contact_forces_and_has_no_zero_inputs():
    _, params = _agent(version="v5")
    assert params["policy/hidden_0"]["w"].shape == (27 + 78, 256)


def test_the_zero_rows_compute_as_the_official_net_on_zero_inputs_and_get_no_gradient():
    """The 27-input call equals a plain 111-input net's on [obs, 0]; the loss's gradient of
    the 84 rows is exactly 0 (as for an input that is 0), so only decay or resets move them."""
    net, params = _agent()
    plain = ActorCritic(ActorCriticConfig(observations=OFFICIAL, actions=8, discrete=False))
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, OBSERVED))
    padded = jnp.concatenate([obs, jnp.zeros((32, OFFICIAL - OBSERVED))], axis=1)
    out, trace = net.apply(params, obs)
    ref, ref_trace = plain.apply(params, padded)
    for key in ("policy", "value"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-5, atol=1e-6)
    for h, r in zip(trace.hidden, ref_trace.hidden, strict=True):
        np.testing.assert_allclose(h, r, rtol=1e-5, atol=1e-6)

    def loss(p):
        o, _ = net.apply(p, obs)
        return jnp.sum(o["policy"] ** 2) + jnp.sum(o["value"] ** 2)

    grads = jax.grad(loss)(params)
    for name in FIRST:
        g = np.asarray(grads[name]["w"])
        assert not g[OBSERVED:].any() and g[:OBSERVED].any()
    # coupled L2 (PyTorch Adam's weight_decay, the official l2) moves them towards 0
    opt = optax.chain(optax.add_decayed_weights(1e-3), optax.adam(1e-4))
    updates, _ = opt.update(grads, opt.init(params), params)
    w, u = np.asarray(params[FIRST[0]]["w"]), np.asarray(updates[FIRST[0]]["w"])
    assert (np.sign(u[OBSERVED:]) == -np.sign(w[OBSERVED:])).all()


def test_cbp_redraws_a_replaced_unit_over_all_111_rows():
    net = ActorCritic(
        ActorCriticConfig(
            observations=OBSERVED, zero_inputs=OFFICIAL - OBSERVED, actions=8, discrete=False,
            hidden=(8, 8),
        )
    )  # fmt: skip
    config = CBPConfig(replacement_rate=1.0 / 8, maturity_threshold=0)
    rule = compose(["cbp"], (config,), Context(net, 1e-3)).unit_rules[0]
    params = net.init(jax.random.PRNGKey(1))
    opt_state = optax.adam(1e-3).init(params)
    _, trace = net.apply(params, jax.random.normal(jax.random.PRNGKey(2), (16, OBSERVED)))
    _, new, _ = rule.apply(
        rule.init(params), params, opt_state, trace, jax.random.PRNGKey(3), jnp.int32(0)
    )
    bound = math.sqrt(3.0 / OFFICIAL)
    for name in FIRST:
        old_w, new_w = np.asarray(params[name]["w"]), np.asarray(new[name]["w"])
        changed = np.flatnonzero((old_w != new_w).any(axis=0))
        assert changed.size == 1  # one unit replaced
        column = new_w[:, changed[0]]
        assert (column != old_w[:, changed[0]]).all()  # every row re-drawn, the zero rows too
        assert np.abs(column).max() <= bound
