"""The six remedies built from lopkit's existing parts — parseval, spectral, nap, fire, dash,
dff — each rule checked by hand on a tiny network, then composed with l2 on scr, permuted
and the PPO agent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit import _config
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.methods import REMEDIES, Context
from lopkit.methods._dash import DASHState
from lopkit.methods._fire import isometry, newton_schulz
from lopkit.methods._parseval import penalty
from lopkit.methods._spectral import power_iteration, spectral_state
from lopkit.nets import MLP, MLPConfig
from lopkit.nets._convnet import ConvNet, ConvNetConfig

KEY = jax.random.PRNGKey(0)


def _net(sizes=(2, 2, 1), **options):
    return MLP(MLPConfig(sizes=sizes, **options))


def _parts(name, net, lr=0.1, **settings):
    config = _config.build(REMEDIES[name].config, settings)
    return REMEDIES[name].build(config, Context(net, lr))


def _zeros(tree):
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


def _with(params, layer, key, value):
    return {**params, layer: {**params[layer], key: jnp.asarray(value, jnp.float32)}}


# ---- parseval ---------------------------------------------------------------------------


def test_parseval_adds_four_lambda_w_times_gram_minus_s_identity_to_hidden_weights_only():
    net = _net()
    params = _with(net.init(KEY), "hidden_0", "w", [[1.0, 2.0], [0.0, 1.0]])
    tx = _parts("parseval", net, coefficient=0.5, scale=1.0).gradient
    out, _ = tx.update(_zeros(params), tx.init(params), params)
    # wᵀw = [[1, 2], [2, 5]]; wᵀw − I = [[0, 2], [2, 4]]; 4λ w (wᵀw − I) = 2·[[4, 10], [2, 4]]
    np.testing.assert_allclose(out["hidden_0"]["w"], [[8.0, 20.0], [4.0, 8.0]], rtol=1e-6)
    for leaf in (out["hidden_0"]["b"], out["output"]["w"], out["output"]["b"]):
        np.testing.assert_array_equal(leaf, 0.0)  # biases and the output layer: untouched


def test_parseval_groups_compare_only_the_block_diagonal():
    net = _net()
    params = _with(net.init(KEY), "hidden_0", "w", [[1.0, 2.0], [0.0, 1.0]])
    tx = _parts("parseval", net, coefficient=0.5, scale=1.0, groups=2).gradient
    out, _ = tx.update(_zeros(params), tx.init(params), params)
    # block-diagonal gram [[1, 0], [0, 5]] − I = [[0, 0], [0, 4]]; 2·w·that = [[0, 16], [0, 8]]
    np.testing.assert_allclose(out["hidden_0"]["w"], [[0.0, 16.0], [0.0, 8.0]], rtol=1e-6)
    with pytest.raises(ConfigError, match="groups = 3 must divide"):
        _parts("parseval", net, groups=3)


def test_parseval_scale_from_init_is_the_init_gain_squared():
    """ReLU's Kaiming gain is √2: s = 2, so w = √2·I (wᵀw = 2I) has no penalty; LeCun: s = 1."""
    relu, lecun = _net(), _net(init="lecun")
    for net, s in ((relu, 2.0), (lecun, 1.0)):
        params = _with(net.init(KEY), "hidden_0", "w", np.sqrt(s) * np.eye(2))
        tx = _parts("parseval", net, coefficient=1.0).gradient
        out, _ = tx.update(_zeros(params), tx.init(params), params)
        np.testing.assert_allclose(out["hidden_0"]["w"], 0.0, atol=1e-5)
    assert float(penalty(jnp.eye(2), 1.0)) == 0.0


# ---- spectral ---------------------------------------------------------------------------


def test_power_iteration_carried_in_the_state_converges_to_the_top_singular_value():
    net = _net(sizes=(4, 3, 2))
    params = net.init(KEY)
    tx = _parts("spectral", net).gradient
    state = tx.init(params)
    for _ in range(40):
        _, state = tx.update(_zeros(params), state, params)
    for name in ("hidden_0", "output"):
        top = np.linalg.svd(np.asarray(params[name]["w"]), compute_uv=False)[0]
        np.testing.assert_allclose(state.sigma[f"{name}/w"], top, rtol=1e-5)
    sigma, _, _ = power_iteration(jnp.diag(jnp.array([3.0, 1.0])), jnp.ones(2), steps=1)
    np.testing.assert_allclose(sigma, np.sqrt(8.2), rtol=1e-6)  # [3,1]/√10 · [27,1]/√82


def test_spectral_gradient_by_hand_on_a_diagonal_weight_and_a_bias():
    """W = diag(3, 1): σ = 3, u = v = e₁, so the weight's term is λ·2k·σ^(k−1)(σ^k − 1)·e₁e₁ᵀ =
    λ·4·3·8 = 96λ at [0, 0] (k = 2); a bias b = (3, 4) gets λ·2k·‖b‖^(2k−2)·b = 100λ·b."""
    net = _net()
    params = _with(net.init(KEY), "hidden_0", "w", np.diag([3.0, 1.0]))
    params = _with(params, "hidden_0", "b", [3.0, 4.0])
    tx = _parts("spectral", net, coefficient=0.01).gradient
    state = tx.init(params)
    for _ in range(30):
        out, state = tx.update(_zeros(params), state, params)
    np.testing.assert_allclose(out["hidden_0"]["w"], [[0.96, 0.0], [0.0, 0.0]], atol=1e-5)
    np.testing.assert_allclose(out["hidden_0"]["b"], [3.0, 4.0], rtol=1e-5)
    ignore = _parts("spectral", net, coefficient=0.01, biases="ignore").gradient
    out, _ = ignore.update(_zeros(params), ignore.init(params), params)
    np.testing.assert_array_equal(out["hidden_0"]["b"], 0.0)


# ---- nap --------------------------------------------------------------------------------


def test_nap_keeps_every_weight_and_each_layernorm_pair_at_its_init_norm():
    e = make_experiment(
        "scr", "nap", {"flip_period": 50, "lr": 0.1}, seeds=2, steps=200, bin_size=100, metrics=()
    )
    program, _ = e.build()
    state = jax.vmap(program.init_seed)(jnp.asarray(e.seed_ids, jnp.int32))
    init = jax.device_get(state["learner"]["params"])
    state, errors, _ = program.chunk(state, jnp.int32(0), 2)
    params = jax.device_get(state["learner"]["params"])
    assert np.isfinite(np.asarray(errors)).all()
    assert "ln_scale" in params["hidden_0"]  # LayerNorm is in
    for k in range(2):
        for name in ("hidden_0", "output"):
            np.testing.assert_allclose(
                np.linalg.norm(params[name]["w"][k]), np.linalg.norm(init[name]["w"][k]), rtol=1e-5
            )
        assert not np.allclose(params["hidden_0"]["w"][k], init["hidden_0"]["w"][k])  # it learns
        pair = np.concatenate(
            [params["hidden_0"]["ln_scale"][k], params["hidden_0"]["ln_offset"][k]]
        )
        np.testing.assert_allclose(np.linalg.norm(pair), np.sqrt(5.0), rtol=1e-5)  # ‖[1…1, 0…0]‖


def test_nap_refuses_a_network_without_layernorm_and_conflicts_with_layernorm():
    conv = ConvNet(ConvNetConfig())
    with pytest.raises(ConfigError, match="nap inserts LayerNorm"):
        _parts("nap", conv)
    with pytest.raises(ConfigError, match="both change the architecture setting 'layernorm'"):
        make_experiment("scr", "nap+layernorm")


# ---- fire -------------------------------------------------------------------------------


def test_newton_schulz_gives_the_svd_polar_factor():
    for w in (
        jnp.array([[2.0, 1.0], [0.5, 1.5]]),
        jax.random.normal(jax.random.PRNGKey(1), (5, 3)),
        jax.random.normal(jax.random.PRNGKey(2), (3, 5)),
    ):
        u, _, vt = np.linalg.svd(np.asarray(w), full_matrices=False)
        np.testing.assert_allclose(newton_schulz(w, 20), u @ vt, atol=1e-5)
    w = jnp.array([[2.0, 1.0], [0.5, 1.5]])
    code = isometry(w, 20, "code")  # the official code's √(d_out/d_in): 1 for a square W
    np.testing.assert_allclose(code, newton_schulz(w, 20), atol=1e-6)
    tall = jax.random.normal(jax.random.PRNGKey(3), (6, 2))
    np.testing.assert_allclose(
        isometry(tall, 20, "code"), newton_schulz(tall, 20) / np.sqrt(3.0), atol=1e-6
    )


def test_fire_at_a_boundary_makes_every_weight_an_isometry_and_keeps_biases():
    net = _net(sizes=(4, 3, 2))
    params = net.init(KEY)
    params = _with(params, "hidden_0", "b", [1.0, 2.0, 3.0])
    event = _parts("fire", net, iterations=30).boundary
    new, _ = event.apply(params, (), KEY)
    w = np.asarray(new["hidden_0"]["w"])  # tall [4, 3]: orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(3), atol=1e-5)
    o = np.asarray(new["output"]["w"])  # [3, 2]
    np.testing.assert_allclose(o.T @ o, np.eye(2), atol=1e-5)
    np.testing.assert_array_equal(new["hidden_0"]["b"], params["hidden_0"]["b"])


def test_fire_every_n_steps_acts_after_updates_n_2n_only():
    net = _net(sizes=(4, 3, 2))
    params = net.init(KEY)
    rule = _parts("fire", net, every=5).unit_rule
    for step, acts in ((3, False), (4, True), (9, True), (10, False)):
        _, new, _ = rule.apply(rule.init(params), params, (), None, KEY, jnp.int32(step))
        same = np.array_equal(new["hidden_0"]["w"], params["hidden_0"]["w"])
        assert same != acts, step


# ---- dash -------------------------------------------------------------------------------


def test_dash_shrinks_each_unit_by_its_clipped_cosine_with_the_negative_mean_gradient():
    net = _net()
    params = _with(net.init(KEY), "hidden_0", "w", [[1.0, 1.0], [0.0, 1.0]])
    params = _with(params, "hidden_0", "b", [1.0, 0.0])
    parts = _parts("dash", net, floor=0.3)
    tx, event = parts.gradient, parts.boundary
    state = tx.init(params)
    # two steps whose mean is g: unit 0's −ḡ = (1, 1) → cos((1, 0), (1, 1)) = 1/√2; unit 1's
    # −ḡ = (−1, 0) → cos((1, 1), (−1, 0)) = −1/√2 → clipped to 0.3; the bias −ḡ = (1, 1) →
    # cos((1, 0), (1, 1)) = 1/√2 for the whole vector
    g = _zeros(params)
    g = _with(g, "hidden_0", "w", [[-1.0, 1.0], [-1.0, 0.0]])
    g = _with(g, "hidden_0", "b", [-1.0, -1.0])
    for scale in (0.5, 1.5):
        scaled = jax.tree_util.tree_map(lambda x, s=scale: s * x, g)
        out, state = tx.update(scaled, state, params)
    np.testing.assert_array_equal(out["hidden_0"]["w"], 1.5 * g["hidden_0"]["w"])  # passed on
    new, opt_state = event.apply(params, (state,), KEY)
    c = 1 / np.sqrt(2)
    np.testing.assert_allclose(new["hidden_0"]["w"], [[c, 0.3], [0.0, 0.3]], rtol=1e-6)
    np.testing.assert_allclose(new["hidden_0"]["b"], [c, 0.0], rtol=1e-6)
    # the output layer had no gradient: kept; the accumulator is reset
    np.testing.assert_array_equal(new["output"]["w"], params["output"]["w"])
    assert isinstance(opt_state[0], DASHState)
    assert all(np.all(x == 0) for x in jax.tree_util.tree_leaves(opt_state[0]))


# ---- dff --------------------------------------------------------------------------------


def test_dff_features_are_sine_and_cosine_of_the_preactivation():
    net = _net(fourier=True)
    assert net.fan_ins == [2, 4]  # the output reads [sin z, cos z]
    np.testing.assert_allclose(net.bounds[0], np.sqrt(3.0 / 2))  # gain 1
    params = net.init(KEY)
    params = _with(params, "hidden_0", "w", [[1.0, 0.0], [0.5, -1.0]])
    params = _with(params, "hidden_0", "b", [0.0, 0.25])
    params = _with(params, "output", "w", [[1.0], [2.0], [3.0], [4.0]])
    params = _with(params, "output", "b", [0.5])
    x = jnp.array([[1.0, 2.0]])
    out, trace = net.apply(params, x)
    z = np.array([1.0 + 1.0, 0.0 - 2.0 + 0.25])  # x @ w + b
    h = np.concatenate([np.sin(z), np.cos(z)])
    np.testing.assert_allclose(trace.hidden[0][0], h, rtol=1e-6)
    np.testing.assert_allclose(out[0, 0], h @ [1.0, 2.0, 3.0, 4.0] + 0.5, rtol=1e-6)
    assert net.unit_layers[0].out_group == 2


def test_dff_is_an_activation_option_and_refuses_crelu_and_conv_nets():
    e = make_experiment("scr", "dff", {}, seeds=1, steps=100, bin_size=100, metrics=())
    assert e.build()[0].learner.net.config.fourier
    matched = make_experiment(
        "scr", "dff", {"dff.match_params": "true"}, seeds=1, steps=100, bin_size=100
    )
    assert matched.build()[0].learner.net.config.sizes == (20, 5, 1)  # (the crelu rule: 5 units)
    with pytest.raises(ConfigError, match="crelu and fourier"):
        make_experiment("scr", "dff+crelu", {}, seeds=1, steps=100, bin_size=100).build()
    with pytest.raises(ConfigError, match="dff"):
        _parts("dff", ConvNet(ConvNetConfig()))


# ---- composition and runs ---------------------------------------------------------------

NEW = ["parseval", "spectral", "nap", "fire", "dash", "dff"]
TINY_PERMUTED = {"data": "digits", "hidden": "16", "examples_per_task": 40, "lr": 0.01}


def _run(benchmark, method, settings, steps, bin_size, seeds=2):
    e = make_experiment(
        benchmark, method, settings, seeds=seeds, steps=steps, bin_size=bin_size, metrics=()
    )
    program, _ = e.build()
    state = program.init(jnp.asarray(e.seed_ids, jnp.int32))
    state, errors, _ = program.chunk(state, jnp.int32(0), steps // bin_size)
    return np.asarray(errors), jax.device_get(state["learner"])


@pytest.mark.parametrize("name", NEW)
def test_each_composes_with_l2_on_scr_and_permuted(name):
    for benchmark, settings, steps, bins in (
        ("scr", {"flip_period": 50}, 200, 100),
        ("permuted", TINY_PERMUTED, 120, 40),
    ):
        errors, learner = _run(benchmark, f"{name}+l2", settings, steps, bins)
        assert np.isfinite(errors).all(), benchmark
        assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(learner["params"]))


@pytest.mark.parametrize("name", ["parseval", "nap"])
def test_a_short_ppo_run_with_l2(name):
    small = {"hidden": "16,16", "rollout_steps": "256", "epochs": "2", "minibatches": "4"}
    settings = {**small, "lr": "1e-3", "change": "permutation", "change_every": "200"}
    errors, learner = _run("control", f"{name}+l2", settings, 512, 256)
    assert np.isfinite(errors).all()
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(learner["params"]))
    if name == "nap":
        assert "ln_scale" in learner["params"]["policy/hidden_0"]


def test_spectral_state_is_found_in_the_optimizer_state():
    _, learner = _run("scr", "l2+spectral", {"flip_period": 50}, 100, 100, seeds=1)
    state = spectral_state(learner["opt_state"])
    assert state is not None and float(state.sigma["hidden_0/w"][0]) > 0


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("parseval", {"parseval.scale": "1,2"}),
        ("spectral", {"spectral.exponent": "1,2"}),
        ("dash", {"dash.average": "ema", "dash.alpha": "0.1,0.9"}),
    ],
)
def test_continuous_settings_are_list_axes(method, settings):
    """A list of values is one program whose runs differ (the grid = each alone is
    tests/test_exact_batching.py's)."""
    grid = make_experiment(
        "scr", method, {"flip_period": 50, **settings}, seeds=1, steps=200, bin_size=100,
        metrics=(),
    )  # fmt: skip
    ((name, values),) = grid.axes
    assert len(values) == 2
    program, _ = grid.build()
    seeds, values = grid.runs()
    state = program.init(jnp.asarray(seeds), jax.tree_util.tree_map(jnp.asarray, values))
    _, errors, _ = program.chunk(state, jnp.int32(0), 2)
    errors = np.asarray(errors)
    assert np.isfinite(errors).all() and not np.array_equal(errors[0], errors[1])


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("normalize_rows", [False, True])
def test_parseval_closed_form_gradient_equals_autodiff_of_the_penalty(groups, normalize_rows):
    from lopkit.methods._parseval import penalty_gradient

    w = jax.random.normal(jax.random.PRNGKey(4), (5, 4))
    auto = jax.grad(penalty)(w, 1.5, groups, normalize_rows)
    np.testing.assert_allclose(
        penalty_gradient(w, 1.5, groups, normalize_rows), auto, rtol=2e-5, atol=1e-5
    )


def test_parseval_diagonal_layers_scale_and_shift_each_unit_and_are_not_regularized():
    net = _net(diagonal=True)
    params = net.init(KEY)
    np.testing.assert_array_equal(params["hidden_0"]["diag_scale"], 1.0)
    np.testing.assert_array_equal(params["hidden_0"]["diag_offset"], 0.0)
    params = _with(params, "hidden_0", "w", [[1.0, 0.0], [0.0, 1.0]])
    params = _with(params, "hidden_0", "diag_scale", [2.0, -1.0])
    params = _with(params, "hidden_0", "diag_offset", [0.5, 0.0])
    _, trace = net.apply(params, jnp.array([[1.0, 3.0]]))
    np.testing.assert_allclose(trace.pre[0][0], [2.5, -3.0])  # z·c + d
    np.testing.assert_allclose(trace.hidden[0][0], [2.5, 0.0])  # then ReLU
    layer = net.unit_layers[0]
    assert (("hidden_0", "diag_scale"), ("hidden_0", "diag_offset")) == layer.extra[-2:]
    assert layer.extra_reset[-2:] == (1.0, 0.0)  # a reset unit gets scale 1, offset 0
    e = make_experiment("scr", "parseval", {"parseval.diagonal_layers": "true"}, seeds=1)
    learner = e.build()[0].learner
    assert learner.net.config.diagonal
    tx = learner.method.parts[0].gradient
    p = learner.net.init(KEY)
    out, _ = tx.update(_zeros(p), tx.init(p), p)
    np.testing.assert_array_equal(out["hidden_0"]["diag_scale"], 0.0)
    with pytest.raises(ConfigError, match="diagonal_layers"):
        _parts("parseval", ConvNet(ConvNetConfig()), diagonal_layers=True)


def test_the_matrix_remedies_act_on_a_convnet_kernel_by_kernel():
    """parseval, spectral, fire, dash on the ConvNet's params: kernels regularized in
    unfolded form, shapes kept, values finite (the binary benchmark's network)."""
    net = ConvNet(ConvNetConfig())
    params = net.init(KEY)
    grads = jax.tree_util.tree_map(lambda p: 0.01 * jnp.ones_like(p), params)
    for name in ("parseval", "spectral", "dash"):
        tx = _parts(name, net).gradient
        out, _ = tx.update(grads, tx.init(params), params)
        assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(params)
        assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(out))
        changed = not np.array_equal(out["conv_1"]["w"], grads["conv_1"]["w"])
        assert changed == (name != "dash"), name  # dash passes the gradient on
    for scale in ("none", "code"):
        new, _ = _parts("fire", net, scale=scale).boundary.apply(params, (), KEY)
        k = np.asarray(new["conv_1"]["w"])  # [3, 3, 32, 64]
        assert k.shape == params["conv_1"]["w"].shape and np.isfinite(k).all()
        if scale == "none":  # the unfolded [288, 64] kernel has orthonormal columns
            m = k.reshape(-1, 64)
            np.testing.assert_allclose(m.T @ m, np.eye(64), atol=2e-3)
    parts = _parts("dash", net)
    state = parts.gradient.init(params)
    _, state = parts.gradient.update(grads, state, params)
    new, _ = parts.boundary.apply(params, (state,), KEY)
    ratio = np.asarray(new["conv_1"]["w"]) / np.asarray(params["conv_1"]["w"])
    assert (ratio >= 0.3 - 1e-6).all() and (ratio <= 1 + 1e-6).all()


def test_nap_leaves_a_zeroed_head_at_zero_instead_of_dividing_by_zero():
    settings = {"flip_period": 50, "reset_head.init": "zero"}
    errors, learner = _run("scr", "reset_head+nap", settings, 100, 100, seeds=1)
    assert np.isfinite(errors).all()
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(learner["params"]))
