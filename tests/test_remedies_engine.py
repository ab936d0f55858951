"""The remedies that use the objective, gradient_fn and evaluation parts (docs/design.md §5),
each checked by hand on a tiny network through the one learner, and the composition rule's
refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopkit import _config
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.engine._learner import Learner, squared_error
from lopkit.methods import REMEDIES, Context, EmptyConfig, Parts, Remedy, UnitRule, compose
from lopkit.nets import MLP, MLPConfig

KEY = jax.random.PRNGKey(0)
STEP_KEY = jax.random.PRNGKey(7)
TINY = {"data": "digits", "hidden": "16", "examples_per_task": 40, "lr": 0.01}


def _net(sizes=(3, 4, 2)):
    return MLP(MLPConfig(sizes=sizes))


def _learner(method, net, lr=0.1, **settings):
    names = method.split("+")
    configs = tuple(_config.build(REMEDIES[n].config, settings.get(n, {})) for n in names)
    composed = compose(names, configs, Context(net, lr))
    wrapped = composed.wrap_network(net)  # as the experiment does (plasticity injection)
    if wrapped is not net:
        net = wrapped
        composed = compose(names, configs, Context(net, lr))
    base = optax.sgd(lr)
    return Learner(net, squared_error, squared_error, composed, composed.transformation(base), base)


def _f(p, x):
    """The tiny MLP by hand: relu(x W0 + b0) W1 + b1."""
    h = jnp.maximum(x @ p["hidden_0"]["w"] + p["hidden_0"]["b"], 0.0)
    return h @ p["output"]["w"] + p["output"]["b"]


def _batch(key, n=2, d=3, k=2):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (n, d)), jax.random.normal(ky, (n, k))


def _step(learner, state, x, y, t=0):
    return learner.step(state, x, y, jnp.zeros((), bool), STEP_KEY, jnp.int32(t))


def _close(a, b, **kw):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), **kw)


def _sgd(params, grads, lr):
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)


def _smoke(bench, method, settings=None, steps=200, seeds=2):
    """A few steps through the engine: finite errors and params."""
    base = TINY if bench == "permuted" else {}
    e = make_experiment(bench, method, {**base, **(settings or {})}, seeds=seeds, steps=steps,
                        bin_size=steps // 2, metrics=())  # fmt: skip
    program, _ = e.build()
    state = program.init(jnp.asarray(e.seed_ids))
    state, errors, _ = program.chunk(state, jnp.int32(0), 2)
    assert np.isfinite(np.asarray(errors)).all()
    for leaf in jax.tree_util.tree_leaves(state["learner"]["params"]):
        assert np.isfinite(np.asarray(leaf)).all()
    return np.asarray(errors), state


# ---- the composition rule ---------------------------------------------------------------


def _fake(name, **parts):
    def build(config, ctx):
        return Parts(**parts)

    return Remedy(name, "test", "test", EmptyConfig, build, tuple(parts))


def test_two_gradient_wrappers_or_two_evaluations_are_refused(monkeypatch):
    rule = UnitRule(lambda p: 0, lambda s, p, o, tr, k, t: (s, p, o))
    wrap = _fake("wrap_a", gradient_fn=lambda vg, p, k: vg(p))
    wrap_b = _fake("wrap_b", gradient_fn=lambda vg, p, k: vg(p))
    slow_a = _fake("slow_a", unit_rule=rule, evaluation=lambda s, p: p)
    slow_b = _fake("slow_b", unit_rule=rule, evaluation=lambda s, p: p)
    for r in (wrap, wrap_b, slow_a, slow_b):
        monkeypatch.setitem(REMEDIES, r.name, r)
    net = _net()
    ctx = Context(net, 0.1)
    with pytest.raises(ConfigError, match="'wrap_a' and 'wrap_b' both wrap the gradient"):
        compose(["wrap_a", "wrap_b"], (EmptyConfig(),) * 2, ctx)
    with pytest.raises(ConfigError, match="'slow_a' and 'slow_b' both replace the parameters"):
        compose(["slow_a", "slow_b"], (EmptyConfig(),) * 2, ctx)
    compose(["wrap_a", "slow_a"], (EmptyConfig(),) * 2, ctx)  # one of each composes


def test_the_evaluation_params_predict_and_the_params_train(monkeypatch):
    """A remedy whose evaluation params are all zeros: the reported error is that of the
    zero network (0 output), while the update is plain SGD on the params."""
    rule = UnitRule(lambda p: jax.tree_util.tree_map(jnp.zeros_like, p),
                    lambda s, p, o, tr, k, t: (s, p, o))  # fmt: skip
    zeros = _fake("zeros", unit_rule=rule, evaluation=lambda s, p: s)
    monkeypatch.setitem(REMEDIES, "zeros", zeros)
    net = _net()
    x, y = _batch(KEY)
    learner = _learner("zeros", net)
    state = learner.init(jax.random.PRNGKey(1))
    new, error, loss = _step(learner, state, x, y)
    np.testing.assert_allclose(error, jnp.mean(y**2), rtol=1e-6)  # the zero net's error
    p = state["params"]
    np.testing.assert_allclose(loss, jnp.mean((_f(p, x) - y) ** 2), rtol=1e-6)
    grads = jax.grad(lambda q: jnp.mean((_f(q, x) - y) ** 2))(p)
    _close(new["params"], _sgd(p, grads, 0.1), rtol=1e-5, atol=1e-7)
    assert learner.predicting(new) is new["rules"][0]


# ---- c_chain ----------------------------------------------------------------------------


def test_c_chain_term_is_lambda_times_the_churn_on_the_reference_batch():
    net = _net()
    learner = _learner("c_chain", net, c_chain={
        "relative_scale": 0.1, "decay_rate": 0.5, "warmup": 2, "reference_size": 3,
    })  # fmt: skip
    (term,) = learner.method.objectives
    theta = net.init(jax.random.PRNGKey(1))
    prev = net.init(jax.random.PRNGKey(2))
    ref = jax.random.normal(jax.random.PRNGKey(3), (3, 3))
    state = {"prev": prev, "ref": ref, "filled": jnp.int32(2), "loss": jnp.float32(0.3),
             "churn": jnp.float32(0.02), "count": jnp.int32(4)}  # fmt: skip
    value, c = term.term(state, theta, None, None, None, 0)
    churn = np.mean((_f(theta, ref[:2]) - _f(prev, ref[:2])) ** 2)  # row 3 not filled yet
    np.testing.assert_allclose(c, churn, rtol=1e-5)
    corr = 1 - 0.5**4
    lam = 0.1 * (0.3 / corr) / (0.02 / corr + 1e-8)
    np.testing.assert_allclose(value, lam * churn, rtol=1e-5)
    warm = term.term({**state, "count": jnp.int32(1)}, theta, None, None, None, 0)[0]
    np.testing.assert_allclose(warm, 1.0 * churn, rtol=1e-5)  # initial_coef in the warm-up


def test_c_chain_two_sgd_steps_by_hand():
    """Step 0: θ⁻ = θ₀, the term is 0 (plain SGD); the state then holds θ₀ and the batch.
    Step 1: SGD on L + λ·C with C against θ₀ on the step-0 inputs (λ = 2 in the warm-up)."""
    net = _net()
    lr = 0.1
    learner = _learner("c_chain", net, lr, c_chain={"initial_coef": 2.0, "reference_size": 3})
    state = learner.init(jax.random.PRNGKey(1))
    theta0 = state["params"]
    x0, y0 = _batch(jax.random.PRNGKey(4))
    x1, y1 = _batch(jax.random.PRNGKey(5))
    s1, _, _ = _step(learner, state, x0, y0, 0)
    g0 = jax.grad(lambda q: jnp.mean((_f(q, x0) - y0) ** 2))(theta0)
    theta1 = _sgd(theta0, g0, lr)
    _close(s1["params"], theta1, rtol=1e-5, atol=1e-7)
    obj = s1["objectives"][0]
    _close(obj["prev"], theta0)
    np.testing.assert_array_equal(obj["ref"][:2], x0)
    assert int(obj["filled"]) == 2

    def total(q):
        churn = jnp.mean((_f(q, x0) - _f(theta0, x0)) ** 2)
        return jnp.mean((_f(q, x1) - y1) ** 2) + 2.0 * churn

    s2, _, loss = _step(learner, s1, x1, y1, 1)
    _close(s2["params"], _sgd(theta1, jax.grad(total)(theta1), lr), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, jnp.mean((_f(theta1, x1) - y1) ** 2), rtol=1e-6)
    np.testing.assert_array_equal(s2["objectives"][0]["ref"][:2], x1)  # newest first
    np.testing.assert_array_equal(s2["objectives"][0]["ref"][2], x0[0])
    assert int(s2["objectives"][0]["filled"]) == 3


@pytest.mark.parametrize("bench", ["scr", "permuted"])
def test_c_chain_composes_with_l2(bench):
    errors, state = _smoke(bench, "c_chain+l2")
    assert int(state["learner"]["objectives"][0]["count"][0]) == 200


CONTROL = {"hidden": "16,16", "rollout_steps": "256", "epochs": "2", "minibatches": "4"}
CONTROL_RUN = {"steps": 512, "bin_size": 256, "block_size": 256, "metrics": ()}


def _control(method, settings=None):
    """Two PPO rollouts of a tiny agent on the control benchmark: finite results."""
    e = make_experiment("control", method, {**CONTROL, **(settings or {})}, seeds=2,
                        **CONTROL_RUN)  # fmt: skip
    program, _ = e.build()
    state = program.init(jnp.asarray(e.seed_ids))
    state, errors, _ = program.chunk(state, jnp.int32(0), 2)
    assert np.isfinite(np.asarray(errors)).all()
    for leaf in jax.tree_util.tree_leaves(state["learner"]["params"]):
        assert np.isfinite(np.asarray(leaf)).all()
    return state


def test_c_chain_on_a_ppo_agent():
    state = _control("c_chain")
    obj = state["learner"]["objectives"][0]
    assert (np.asarray(obj["count"]) == 16).all()  # 2 rollouts × 2 epochs × 4 minibatches
    assert (np.asarray(obj["churn"]) > 0).all()  # the policy moved off its batch


# ---- sam --------------------------------------------------------------------------------


def test_sam_steps_with_the_gradient_at_the_perturbed_point():
    net = _net()
    lr, rho = 0.1, 0.3
    learner = _learner("sam", net, lr, sam={"rho": rho})
    state = learner.init(jax.random.PRNGKey(1))
    theta = state["params"]
    x, y = _batch(jax.random.PRNGKey(4))

    def loss(q):
        return jnp.mean((_f(q, x) - y) ** 2)

    g = jax.grad(loss)(theta)
    norm = np.sqrt(sum(float(jnp.sum(v**2)) for v in jax.tree_util.tree_leaves(g)))
    eps = jax.tree_util.tree_map(lambda v: rho * v / norm, g)
    g_sam = jax.grad(loss)(jax.tree_util.tree_map(jnp.add, theta, eps))
    new, error, reported = _step(learner, state, x, y)
    _close(new["params"], _sgd(theta, g_sam, lr), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(reported, loss(theta), rtol=1e-6)  # the loss at θ
    np.testing.assert_allclose(error, loss(theta), rtol=1e-6)
    flat = _learner("sam", net, lr, sam={"rho": 0.0})  # ρ = 0: plain SGD
    _close(_step(flat, state, x, y)[0]["params"], _sgd(theta, g, lr), rtol=1e-5, atol=1e-7)


def test_plastic_composes_sam_layernorm_crelu_reset_head():
    _smoke("scr", "sam+layernorm+crelu+reset_head", {"flip_period": 50})
    _smoke("permuted", "sam+l2")


def test_sam_wraps_c_chain_and_two_sams_are_refused():
    _smoke("scr", "sam+c_chain")
    with pytest.raises(ConfigError, match="twice"):
        make_experiment("scr", "sam+sam")


def test_sam_on_a_ppo_agent():
    _control("sam")


# ---- hare_tortoise ----------------------------------------------------------------------


def test_hare_tortoise_by_hand():
    """Step 0: the hare takes an SGD step, the tortoise moves (1 − m) toward it, the error
    is the tortoise's (θ₀'s). Step 1 (K = 2): the error is the tortoise's, then the hare is
    reset to the tortoise's new value."""
    net = _net()
    lr, m = 0.1, 0.7
    learner = _learner("hare_tortoise", net, lr, hare_tortoise={"momentum": m, "reset_every": 2})
    state = learner.init(jax.random.PRNGKey(1))
    theta0 = state["params"]
    x0, y0 = _batch(jax.random.PRNGKey(4))
    x1, y1 = _batch(jax.random.PRNGKey(5))

    def loss(q, x, y):
        return jnp.mean((_f(q, x) - y) ** 2)

    s1, e0, _ = _step(learner, state, x0, y0, 0)
    theta1 = _sgd(theta0, jax.grad(loss)(theta0, x0, y0), lr)
    slow1 = jax.tree_util.tree_map(lambda a, b: m * a + (1 - m) * b, theta0, theta1)
    _close(s1["params"], theta1, rtol=1e-5, atol=1e-7)
    _close(learner.predicting(s1), slow1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(e0, loss(theta0, x0, y0), rtol=1e-6)

    s2, e1, l1 = _step(learner, s1, x1, y1, 1)
    np.testing.assert_allclose(e1, loss(slow1, x1, y1), rtol=1e-5)  # the tortoise predicts
    np.testing.assert_allclose(l1, loss(theta1, x1, y1), rtol=1e-5)  # the hare learns
    theta2 = _sgd(theta1, jax.grad(loss)(theta1, x1, y1), lr)
    slow2 = jax.tree_util.tree_map(lambda a, b: m * a + (1 - m) * b, slow1, theta2)
    _close(learner.predicting(s2), slow2, rtol=1e-5, atol=1e-7)
    _close(s2["params"], slow2, rtol=1e-5, atol=1e-7)  # the reset after update 2


@pytest.mark.parametrize("bench", ["scr", "permuted"])
def test_hare_tortoise_composes_with_l2_and_cbp(bench):
    _smoke(bench, "hare_tortoise+l2", {"hare_tortoise.reset_every": 50})
    _smoke(bench, "cbp+hare_tortoise", {"cbp.maturity_threshold": 20})


def test_hare_tortoise_on_a_ppo_agent_plays_the_tortoise():
    _control("hare_tortoise", {"hare_tortoise.reset_every": 4})


def test_the_probes_read_the_evaluation_params():
    """hare_tortoise's probes are the tortoise's: replacing the hare's params changes no
    probe value, replacing the tortoise's does."""
    run = {"steps": 200, "bin_size": 100, "metrics": ("weight_magnitude", "dead"),
           "metrics_every": 100, "seeds": 1}  # fmt: skip
    e = make_experiment("scr", "hare_tortoise", {"hare_tortoise.momentum": "0.9"}, **run)
    program, _ = e.build()
    state = program.init(jnp.asarray(e.seed_ids))
    state, _, _ = program.chunk(state, jnp.int32(0), 2)
    one = jax.tree_util.tree_map(lambda a: a[0], state)

    def probes(s):
        return np.asarray(program._probe_values(s, jnp.int32(0))[1])

    def scaled(tree):
        return jax.tree_util.tree_map(lambda a: 3.0 * a, tree)

    learner = one["learner"]
    hare = {**one, "learner": {**learner, "params": scaled(learner["params"])}}
    slow = {**learner["rules"][0], "slow": scaled(learner["rules"][0]["slow"])}
    tortoise = {**one, "learner": {**learner, "rules": [slow]}}
    base = probes(one)
    assert np.isfinite(base).all()
    np.testing.assert_array_equal(probes(hare), base)
    assert not np.allclose(probes(tortoise), base)


# ---- regrama ----------------------------------------------------------------------------


def test_regrama_recycles_the_units_without_gradient_where_redo_sees_activity():
    """Unit 0 is dead (bias −100: no activity, no gradient); unit 1 is active but its
    outgoing weights are 0, so its incoming weights get no gradient. τ = 0, F = 1, η = 0:
    ReGraMa recycles both, ReDo only unit 0; the other units take the plain SGD step."""
    net = _net()
    lr = 0.1
    params = net.init(jax.random.PRNGKey(1))
    params["hidden_0"]["b"] = params["hidden_0"]["b"].at[0].set(-100.0)
    params["hidden_0"]["w"] = jnp.abs(params["hidden_0"]["w"])
    params["hidden_0"]["b"] = params["hidden_0"]["b"].at[1].set(5.0)
    params["output"]["w"] = params["output"]["w"].at[1].set(0.0)
    x, y = _batch(jax.random.PRNGKey(4))
    x = jnp.abs(x)  # unit 1 (positive weights, bias 5) is active on every example
    grads = jax.grad(lambda q: jnp.mean((_f(q, x) - y) ** 2))(params)
    g = np.abs(np.asarray(grads["hidden_0"]["w"])).mean(0)
    assert g[0] == 0 and g[1] == 0 and (g[2:] > 0).all()
    plain = jax.tree_util.tree_map(np.asarray, _sgd(params, grads, lr))
    settings = {"threshold": 0.0, "reset_every": 1, "decay_rate": 0.0}
    for name, recycled in (("regrama", [0, 1]), ("redo", [0])):
        learner = _learner(name, net, lr, **{name: settings})
        state = {**learner.init(jax.random.PRNGKey(1)), "params": params}
        state["opt_state"] = learner.tx.init(params)
        new, _, _ = _step(learner, state, x, y)
        p = jax.tree_util.tree_map(np.asarray, new["params"])
        kept = np.array([i for i in range(4) if i not in recycled])
        for i in recycled:
            assert float(p["hidden_0"]["b"][i]) == 0.0, (name, i)
            np.testing.assert_array_equal(p["output"]["w"][i], 0.0)
            assert not np.allclose(p["hidden_0"]["w"][:, i], plain["hidden_0"]["w"][:, i])
        np.testing.assert_allclose(p["hidden_0"]["w"][:, kept], plain["hidden_0"]["w"][:, kept],
                                   rtol=1e-6)  # fmt: skip
        np.testing.assert_allclose(p["output"]["w"][kept], plain["output"]["w"][kept], rtol=1e-6)
        assert int(new["rules"][0][0]["replaced"]) == len(recycled), name


def test_regrama_score_is_the_mean_incoming_gradient_over_its_layer_mean():
    net = _net((3, 5, 2))
    grads = {"hidden_0": {"w": jnp.arange(15.0).reshape(3, 5) - 7.0, "b": jnp.zeros(5)}}
    from lopkit.methods import gradient_magnitude
    from lopkit.metrics import dormant_scores

    layer = net.unit_layers[0]
    g = np.abs(np.arange(15.0).reshape(3, 5) - 7.0).mean(0)
    np.testing.assert_allclose(gradient_magnitude(layer, None, grads), g)
    np.testing.assert_allclose(dormant_scores(g[None]), g / g.mean(), rtol=1e-6)


@pytest.mark.parametrize("bench", ["scr", "permuted"])
def test_regrama_composes_with_l2(bench):
    _, state = _smoke(bench, "regrama+l2", {"regrama.reset_every": 50, "regrama.threshold": 0.5})
    assert int(np.asarray(state["learner"]["rules"][0][0]["replaced"]).sum()) > 0


def test_regrama_on_a_ppo_agent():
    _control("regrama", {"regrama.reset_every": 4, "regrama.threshold": 0.5})


# ---- trac -------------------------------------------------------------------------------


def test_erfi_matches_scipy():
    from scipy.special import erfi as reference

    from lopkit.methods import erfi

    x = np.array([-3.0, -1.0, -0.2, 0.0, 1e-8, 0.5, 1 / np.sqrt(2), 2.0, 4.0])
    np.testing.assert_allclose(np.asarray(erfi(jnp.asarray(x, jnp.float32))), reference(x),
                               rtol=1e-5, atol=1e-12)  # fmt: skip


def _trac_oracle(theta0, batches, lr, betas, s_init, eps=1e-8):
    """TRAC from its equations, in float64 (numpy), SGD as the base optimizer, Δ carried;
    the gradient at each θ_t from the tiny net (jax, float32). While S > 0 the official
    code's recovery Δ = (θ − θ_ref)/(S + ε) gives the same Δ (up to rounding)."""
    from scipy.special import erfi as erfi64

    def leaves(tree):
        return [np.asarray(a, np.float64) for a in jax.tree_util.tree_leaves(tree)]

    treedef = jax.tree_util.tree_structure(theta0)
    ref = leaves(theta0)
    theta = [a.copy() for a in ref]
    b = np.asarray(betas, np.float64)
    s, v, sigma = np.zeros(len(b)), np.zeros(len(b)), np.full(len(b), 1e-8)
    delta = [np.zeros_like(a) for a in ref]  # the base iterate's offset, carried
    for x, y in batches:
        q = treedef.unflatten([jnp.asarray(a, jnp.float32) for a in theta])
        g = leaves(jax.grad(lambda q, x=x, y=y: jnp.mean((_f(q, x) - y) ** 2))(q))
        h = sum(float(np.dot(d.ravel(), gg.ravel())) for d, gg in zip(delta, g, strict=True))
        delta = [d - lr * gg for d, gg in zip(delta, g, strict=True)]
        v = b**2 * v + h**2
        sigma = b * sigma - h
        s = s_init / erfi64(1 / np.sqrt(2)) * erfi64(sigma / (np.sqrt(2) * np.sqrt(v) + eps))
        theta = [r + d * max(s.sum(), 0.0) for r, d in zip(ref, delta, strict=True)]
    return treedef.unflatten(theta), s


@pytest.mark.parametrize("delta", ["carried", "recovered"])
def test_trac_matches_an_oracle_of_its_equations(delta):
    """Four SGD steps wrapped by TRAC against the float64 oracle. s_init 0.5 keeps S of
    order 1 from the first step (at the default 1e-8 the recovery Δ = (θ − θ_ref)/S
    amplifies float32 rounding ~10⁸-fold, in the official code as here)."""
    net = _net()
    lr, betas = 0.01, (0.9, 0.99, 0.999)
    learner = _learner("trac", net, lr, trac={"betas": betas, "s_init": 0.5, "delta": delta})
    state = learner.init(jax.random.PRNGKey(1))
    theta0 = state["params"]
    x, y = _batch(jax.random.PRNGKey(10), n=4)
    batches = [(x + 0.1 * i, y) for i in range(4)]  # one task: the gradients agree, S > 0
    for t, (x, y) in enumerate(batches):
        state, _, _ = _step(learner, state, x, y, t)
    expected, s = _trac_oracle(theta0, batches, lr, betas, 0.5)
    (trac_state,) = [o for o in state["opt_state"] if hasattr(o, "sigma")]
    np.testing.assert_allclose(np.asarray(trac_state.s), s, rtol=1e-4)
    assert s.sum() > 0.1  # the scale is of order 1: the test is not void
    _close(state["params"], expected, rtol=1e-4, atol=1e-6)
    leaves = zip(jax.tree_util.tree_leaves(state["params"]), jax.tree_util.tree_leaves(theta0),
                 strict=True)  # fmt: skip
    moved = max(float(jnp.abs(a - b).max()) for a, b in leaves)
    assert moved > 1e-4


@pytest.mark.parametrize("bench", ["scr", "permuted"])
def test_trac_composes_with_l2(bench):
    _smoke(bench, "trac+l2")


def test_trac_recovered_delta_stays_at_the_reference_once_the_scale_is_clamped():
    """The official code's recovery of Δ: with S ≤ 0 the params are θ_ref, so Δ = 0 and
    h = 0, and S never changes again. Carried, Δ keeps the base's updates."""
    net = _net()
    x, y = _batch(jax.random.PRNGKey(4))
    for delta, stuck in (("recovered", True), ("carried", False)):
        learner = _learner("trac", net, 0.1, trac={"delta": delta})
        state = learner.init(jax.random.PRNGKey(1))
        (i,) = [j for j, o in enumerate(state["opt_state"]) if hasattr(o, "sigma")]
        opt = list(state["opt_state"])
        opt[i] = opt[i]._replace(s=jnp.full_like(opt[i].s, -1e-9),
                                 sigma=jnp.full_like(opt[i].sigma, -1.0),
                                 variance=jnp.ones_like(opt[i].variance))  # fmt: skip
        state = {**state, "opt_state": type(state["opt_state"])(opt)}
        for t in range(20):
            state, _, _ = _step(learner, state, x, y, t)
        trac_state = state["opt_state"][i]
        at_ref = all(
            np.array_equal(a, b)
            for a, b in zip(jax.tree_util.tree_leaves(state["params"]),
                            jax.tree_util.tree_leaves(trac_state.reference.params), strict=True)
        )  # fmt: skip
        assert at_ref == stuck, delta


def test_trac_on_a_ppo_agent():
    _control("trac")


# ---- plasticity_injection ---------------------------------------------------------------


def _mlp(p, x):
    """relu(relu(x W0 + b0) W1 + b1) W2 + b2 and its first features z."""
    z = jnp.maximum(x @ p["hidden_0"]["w"] + p["hidden_0"]["b"], 0.0)
    h = jnp.maximum(z @ p["hidden_1"]["w"] + p["hidden_1"]["b"], 0.0)
    return h @ p["output"]["w"] + p["output"]["b"], z


def _head(q, z):
    h = jnp.maximum(z @ q["hidden_0"]["w"] + q["hidden_0"]["b"], 0.0)
    return h @ q["output"]["w"] + q["output"]["b"]


def test_plasticity_injection_by_hand():
    """A 3→4→5→2 MLP, a two-layer head, injections after updates 2 and 4. The output is
    unchanged at the injection; afterwards one SGD step moves the encoder and φ (by the
    gradient of h + g_φ − g_φ₀) and leaves the old head, φ₀ and the next pair as they were."""
    net = _net((3, 4, 5, 2))
    lr = 0.1
    learner = _learner("plasticity_injection", net, lr, plasticity_injection={
        "inject_every": 2, "injections": 2, "head_layers": 2})  # fmt: skip
    wrapped = learner.net
    state = learner.init(jax.random.PRNGKey(1))
    batches = [_batch(jax.random.PRNGKey(20 + i), n=3, k=2) for i in range(3)]
    s1, _, _ = _step(learner, state, *batches[0], 0)
    before = s1["params"]
    s2, _, _ = _step(learner, s1, *batches[1], 1)  # the update, then injection 0
    p = s2["params"]
    x = batches[2][0]
    out_base = _mlp(p, x)[0]
    np.testing.assert_array_equal(wrapped.apply(p, x)[0], out_base)  # unchanged: g − g₀ = 0
    _close(p["inject/0"], p["inject0/0"], rtol=0, atol=0)
    assert not np.allclose(p["inject/0"]["output"]["w"], before["inject/0"]["output"]["w"])

    x2, y2 = batches[2]

    def loss(q):
        out, z = _mlp(q, x2)
        out = out + _head(q["inject/0"], z) - _head(q["inject0/0"], z)
        return jnp.mean((out - y2) ** 2)

    g = jax.grad(loss)(p)
    s3, _, _ = _step(learner, s2, x2, y2, 2)
    q = s3["params"]
    expected = _sgd(p, g, lr)
    _close(q["hidden_0"], expected["hidden_0"], rtol=1e-5, atol=1e-7)  # the encoder learns
    _close(q["inject/0"], expected["inject/0"], rtol=1e-5, atol=1e-7)  # φ learns
    for frozen in ("hidden_1", "output", "inject0/0", "inject/1", "inject0/1"):
        _close(q[frozen], p[frozen], rtol=0, atol=0)


def test_plasticity_injection_composes_and_refuses_other_networks():
    settings = {"plasticity_injection.inject_every": 50, "plasticity_injection.injections": 2}
    _smoke("scr", "plasticity_injection+l2", settings)
    _smoke("permuted", "l2+plasticity_injection", {**settings, "hidden": "16,16"})
    with pytest.raises(ConfigError, match="adds heads to an MLP"):
        make_experiment("control", "plasticity_injection", CONTROL, seeds=1, **CONTROL_RUN)
