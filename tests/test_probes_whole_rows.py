"""The whole-network row (``layer = ""``) of every probe with per-layer rows, against its
definition in docs/metrics.md ("Recording them in runs"), computed by hand in float64
NumPy on a 3-4-6-2 ReLU MLP (forward pass and backward pass written out here, not
lopkit's): unit fractions pooled over the 10 hidden units, duplicates the unit-weighted
mean of the layers', the feature norm of both layers' features together, the
pre-activation shift the mean over layers, ranks the last hidden layer's, weight
magnitude and effective step size pooled over all weights, the isometry gap the mean
over weight layers, churn (an agent: the sum over its outputs). The network is made so
that the documented row differs from the other readings (the last layer's value, the
plain mean of the layers'), so a wrong aggregation fails. Probes with only a ``""`` row
(norms, NTK, sharpness, Adam, plasticity, accuracies) are their metric function, tested
in the metrics' own tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit.engine import _probes
from lopkit.engine._probes import ProbeInputs
from lopkit.nets import MLP, MLPConfig
from lopkit.rl._agent import ActorCritic, ActorCriticConfig

RNG = np.random.default_rng(7)
SIZES = (3, 4, 6, 2)
X = RNG.uniform(0.1, 1.0, (12, 3))
Y = RNG.normal(size=(12, 2))


def _mlp_params(seed, activation="relu"):
    rng = np.random.default_rng(seed)
    p = {
        f"hidden_{i}" if i < 2 else "output": {
            "w": rng.normal(size=(SIZES[i], SIZES[i + 1])),
            "b": rng.normal(0, 0.1, SIZES[i + 1]),
        }
        for i in range(3)
    }
    # hidden_0 small (~0.04) but live on every input (x ∈ [0.1, 1]³), hidden_1 large (~10)
    # and live from positive features: a hidden_0 unit is dormant against the network's
    # mean activity, not against its layer's (and a hidden_1 unit by its gradient)
    p["hidden_0"]["w"] *= 0.01
    p["hidden_0"]["b"][1:] = 0.04
    p["hidden_1"]["w"] = 100.0 * np.abs(p["hidden_1"]["w"])
    p["hidden_0"]["b"][0] = -100.0  # but hidden_0 unit 0 dead (1 of 4)
    p["hidden_1"]["b"][3:] = -100.0  # hidden_1: units 3, 4, 5 dead (3 of 6)
    p["hidden_1"]["w"][:, 1] = 2.0 * p["hidden_1"]["w"][:, 0]  # unit 1 = 2 × unit 0
    p["hidden_1"]["b"][1] = 2.0 * p["hidden_1"]["b"][0]
    return p


def _forward(p, x):
    """(pre-activations [z1, z2], features [h1, h2], output), float64."""
    z1 = x @ p["hidden_0"]["w"] + p["hidden_0"]["b"]
    h1 = np.maximum(z1, 0)
    z2 = h1 @ p["hidden_1"]["w"] + p["hidden_1"]["b"]
    h2 = np.maximum(z2, 0)
    return [z1, z2], [h1, h2], h2 @ p["output"]["w"] + p["output"]["b"]


def _backward(p, x, y):
    """(∂L/∂z per example for both layers, ∂L/∂θ), L = mean over entries of (f − y)²."""
    (z1, z2), (h1, h2), out = _forward(p, x)
    d_out = 2.0 * (out - y) / out.size
    d2 = (d_out @ p["output"]["w"].T) * (z2 > 0)
    d1 = (d2 @ p["hidden_1"]["w"].T) * (z1 > 0)
    grads = {
        "hidden_0": {"w": x.T @ d1, "b": d1.sum(0)},
        "hidden_1": {"w": h1.T @ d2, "b": d2.sum(0)},
        "output": {"w": h2.T @ d_out, "b": d_out.sum(0)},
    }
    return [d1, d2], grads


def _score_fraction(a, tau):
    """Fraction of the units (columns) with E|a_i| / mean_k E|a_k| ≤ τ (ReDo's score)."""
    m = np.abs(a).mean(0)
    s = m / m.mean() if m.mean() > 0 else np.zeros_like(m)
    return np.mean(s <= tau + 1e-6)


def _duplicates(h):
    std = h.std(0)
    live = std > 1e-6 * std.max()
    c = np.corrcoef(h[:, live].T)
    np.fill_diagonal(c, 0.0)
    return (np.abs(c) > 0.95).any(1).sum() / h.shape[1]


def _gap(w):
    g = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    k = g.shape[0]
    return np.linalg.norm(g - np.eye(k)) / np.sqrt(k)


def _weights(p):
    return [p[k]["w"] for k in ("hidden_0", "hidden_1", "output")]


class _Learner:
    def __init__(self, net):
        self.net = net
        self.loss_fn = lambda out, y: jnp.mean((out - y) ** 2)


def _inputs(net, params, params0, params_prev, x, y):
    as32 = lambda t: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), t)  # noqa: E731
    params, params0, params_prev = as32(params), as32(params0), as32(params_prev)
    _, trace = net.apply(params, jnp.asarray(x, jnp.float32))
    return ProbeInputs(
        params=params,
        params0=params0,
        opt_state=None,
        pre=trace.pre,
        hidden=trace.hidden,
        x=jnp.asarray(x, jnp.float32),
        y=None if y is None else jnp.asarray(y, jnp.float32),
        layers=tuple(u.name for u in net.unit_layers),
        learner=_Learner(net),
        stream=None,
        stream_state=None,
        key=jax.random.PRNGKey(0),
        params_prev=params_prev,
    )


def _rows(name, inputs):
    return {(m, layer): float(v) for m, layer, v in _probes.PROBES[name].fn(inputs)}


P, P0, PREV = _mlp_params(1), _mlp_params(2), _mlp_params(3)
NET = MLP(MLPConfig(sizes=SIZES))
INPUTS = _inputs(NET, P, P0, PREV, X, Y)
(Z1, Z2), (H1, H2), OUT = _forward(P, X)
ALL_H = np.concatenate([H1, H2], 1)
ALL_Z = np.concatenate([Z1, Z2], 1)


def _check(name, metric, expected, last, mean_of_layers):
    """The probe's "" row is ``expected``; the network makes it differ from the last
    layer's value and from the plain mean of the layers' values (when they are given)."""
    rows = _rows(name, INPUTS)
    np.testing.assert_allclose(rows[(metric, "")], expected, rtol=1e-5, atol=1e-5)
    for other in (last, mean_of_layers):
        if other is not None:
            assert abs(other - expected) > 1e-3, (metric, other, expected)


def _per_layer(f, arrays):
    values = [f(a) for a in arrays]
    return values[-1], float(np.mean(values))


@pytest.mark.parametrize(
    ("name", "metric", "f", "source"),
    [
        ("dead_fraction", "dead_fraction", lambda h: np.mean((h == 0).all(0)), "hidden"),
        ("inactive_fraction", "inactive_fraction", lambda h: np.mean((h != 0).mean(0) < 0.01),
         "hidden"),
        ("linear_fraction", "linear_fraction", lambda z: np.mean((z > 0).all(0)), "pre"),
        ("dormant_fraction", "dormant_fraction", lambda h: _score_fraction(h, 0.1), "hidden"),
        ("dormant_fraction", "dormant_fraction_0.025", lambda h: _score_fraction(h, 0.025),
         "hidden"),
        ("grama_dormant_fraction", "grama_dormant_fraction", lambda g: _score_fraction(g, 0.1),
         "grads"),
    ],
)  # fmt: skip
def test_unit_fractions_pool_every_hidden_unit_of_the_network(name, metric, f, source):
    arrays = {"hidden": [H1, H2], "pre": [Z1, Z2], "grads": _backward(P, X, Y)[0]}[source]
    last, mean = _per_layer(f, arrays)
    rows = _rows(name, INPUTS)
    for layer, a in zip(("hidden_0", "hidden_1"), arrays, strict=True):
        np.testing.assert_allclose(rows[(metric, layer)], f(a), rtol=1e-5)
    pooled = f(np.concatenate(arrays, 1))
    # the dead fraction (1 + 3) / 10 = 0.4, not the last layer's 0.5 nor the mean 0.375
    _check(name, metric, pooled, last if pooled != last else None, None)
    if metric == "dead_fraction":
        assert (pooled, last, mean) == (0.4, 0.5, 0.375)
    if name in ("dormant_fraction", "grama_dormant_fraction"):  # scores against the network
        units = np.array([a.shape[1] for a in arrays])
        weighted = sum(n * f(a) for n, a in zip(units, arrays, strict=True)) / units.sum()
        assert pooled - weighted >= 0.2, (pooled, weighted)


def test_duplicates_are_the_unit_weighted_mean_of_the_layers():
    per = [_duplicates(H1), _duplicates(H2)]
    assert 2 / 6 <= per[1] <= 3 / 6  # the copied pair at least; the 3 dead units never
    expected = (4 * per[0] + 6 * per[1]) / 10
    _check("duplicate_fraction", "duplicate_fraction", expected, per[1], np.mean(per))


def test_the_feature_norm_is_the_norm_of_all_hidden_features_together():
    p = {**P, "hidden_1": {**P["hidden_1"], "w": P["hidden_1"]["w"] / 100.0}}  # comparable
    _, (h1, h2), _ = _forward(p, X)
    expected = np.linalg.norm(np.concatenate([h1, h2], 1), axis=1).mean()
    per = [np.linalg.norm(h, axis=1).mean() for h in (h1, h2)]
    rows = _rows("feature_norm", _inputs(NET, p, P0, PREV, X, Y))
    np.testing.assert_allclose(rows[("feature_norm", "")], expected, rtol=1e-5)
    for other in (per[1], np.mean(per)):  # not the last layer's, not the mean of the layers'
        assert abs(other - expected) > 0.02 * expected


def test_the_preactivation_shift_is_the_mean_over_hidden_layers():
    (z01, z02), _, _ = _forward(P0, X)
    shift = [z.mean() - z0.mean() for z, z0 in ((Z1, z01), (Z2, z02))]
    ratio = [z.std() / z0.std() for z, z0 in ((Z1, z01), (Z2, z02))]
    _check("preactivation_shift", "preactivation_mean_shift", np.mean(shift), shift[1], None)
    _check("preactivation_shift", "preactivation_std_ratio", np.mean(ratio), ratio[1], None)
    # not the shift of all pre-activations pooled either (layers of 4 and 6 units)
    pooled = ALL_Z.mean() - np.concatenate([z01, z02], 1).mean()
    assert abs(pooled - np.mean(shift)) > 1e-3


def _ranks(h):
    s = np.linalg.svd(h, compute_uv=False)
    p = s / s.sum()
    nz = p[p > 0]
    cum, cum2 = np.cumsum(s) / s.sum(), np.cumsum(s**2) / (s**2).sum()
    return {
        "effective_rank": np.exp(-(nz * np.log(nz)).sum()),
        "srank": int(np.argmax(cum >= 0.99 - 1e-6)) + 1,
        "srank_fraction": (int(np.argmax(cum >= 0.99 - 1e-6)) + 1) / h.shape[1],
        "approximate_rank": int(np.argmax(cum2 >= 0.99 - 1e-6)) + 1,
        "feature_rank": int((np.linalg.svd(h / np.sqrt(len(h)), compute_uv=False) > 0.01).sum()),
        "stable_rank_classic": (s**2).sum() / s[0] ** 2,
    }


@pytest.mark.parametrize(
    "name",
    ["effective_rank", "srank", "srank_fraction", "approximate_rank", "feature_rank",
     "stable_rank_classic"],
)  # fmt: skip
def test_ranks_are_the_last_hidden_layers(name):
    rows = _rows(name, INPUTS)
    first, last = _ranks(H1)[name], _ranks(H2)[name]
    np.testing.assert_allclose(rows[(name, "hidden_0")], first, rtol=2e-4)
    np.testing.assert_allclose(rows[(name, "")], last, rtol=2e-4)
    assert rows[(name, "")] == rows[(name, "hidden_1")]


def test_weight_magnitude_pools_every_weight():
    ws = _weights(P)
    expected = sum(np.abs(w).sum() for w in ws) / sum(w.size for w in ws)
    per = [np.abs(w).mean() for w in ws]
    _check("weight_magnitude", "weight_magnitude", expected, per[-1], np.mean(per))


def test_the_isometry_gap_is_the_mean_over_weight_layers():
    per = [_gap(w) for w in _weights(P)]
    _check("isometry_gap", "isometry_gap", np.mean(per), per[-1], None)


def test_the_effective_step_size_pools_every_weight():
    now, before = _weights(P), _weights(PREV)
    delta = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(now, before, strict=True)))
    expected = delta / np.sqrt(sum((a**2).sum() for a in now))
    per = [np.linalg.norm(a - b) / np.linalg.norm(a) for a, b in zip(now, before, strict=True)]
    _check("effective_lr", "effective_lr", expected, per[-1], np.mean(per))


def test_norms_and_churn_of_the_whole_network():
    leaves = lambda p: [a for layer in p.values() for a in layer.values()]  # noqa: E731
    expected = {
        "param_norm": np.sqrt(sum((a**2).sum() for a in leaves(P))),
        "distance_from_init": np.sqrt(
            sum(((a - b) ** 2).sum() for a, b in zip(leaves(P), leaves(P0), strict=True))
        ),
        "grad_norm": np.sqrt(sum((a**2).sum() for a in leaves(_backward(P, X, Y)[1]))),
        "churn": ((OUT - _forward(PREV, X)[2]) ** 2).sum(1).mean(),
    }
    for name, value in expected.items():
        assert _rows(name, INPUTS) == pytest.approx({(name, ""): value}, rel=1e-5)


def test_saturated_fraction_pools_the_units_of_a_tanh_network():
    net = MLP(MLPConfig(sizes=SIZES, activation="tanh"))
    p = _mlp_params(1)
    p["hidden_0"]["b"][0] = 100.0  # saturated on every input: 1 of 4, then 3 of 6
    p["hidden_1"]["b"][3:] = 100.0
    inputs = _inputs(net, p, p, p, X, Y)
    h1 = np.tanh(X @ p["hidden_0"]["w"] + p["hidden_0"]["b"])
    h2 = np.tanh(h1 @ p["hidden_1"]["w"] + p["hidden_1"]["b"])
    sat = lambda h: (np.abs(h) > 0.99).all(0)  # noqa: E731
    expected = np.concatenate([sat(h1), sat(h2)]).mean()
    rows = _rows("saturated_fraction", inputs)
    assert rows[("saturated_fraction", "")] == pytest.approx(expected)
    assert expected != rows[("saturated_fraction", "hidden_1")]  # pooled, not the last layer's


def test_an_agents_churn_is_the_sum_over_its_outputs():
    net = ActorCritic(ActorCriticConfig(observations=3, actions=2, hidden=(4,)))
    p, prev = net.init(jax.random.PRNGKey(0)), net.init(jax.random.PRNGKey(1))
    out, before = net.apply(p, jnp.asarray(X))[0], net.apply(prev, jnp.asarray(X))[0]
    policy = ((np.asarray(out["policy"]) - np.asarray(before["policy"])) ** 2).sum(1).mean()
    value = ((np.asarray(out["value"]) - np.asarray(before["value"])) ** 2).mean()
    rows = _rows("churn", _inputs(net, p, p, prev, X, None))
    assert rows == pytest.approx(
        {("churn", "policy"): policy, ("churn", "value"): value, ("churn", ""): policy + value},
        rel=1e-5,
    )
