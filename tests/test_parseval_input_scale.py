"""Parseval's input scaling (Chung et al. 2024; the official ScaleLayer): a learned scalar c
(init 1) multiplying the network's input, z_0 = (c·x) W_0 + b_0, outside the penalty. One
SGD step checked by hand on a 2-2-1 ReLU net; where it lives on an MLP and an agent; the
networks that have no such option refuse it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopkit import _config
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.methods import REMEDIES, Context
from lopkit.methods._registry import compose
from lopkit.nets import MLP, MLPConfig

KEY = jax.random.PRNGKey(0)


def _params(net, c=1.0):
    p = net.init(KEY)
    hidden = {**p["hidden_0"], "w": jnp.array([[1.0, 2.0], [0.0, 1.0]]), "b": jnp.zeros(2)}
    hidden["input_scale"] = jnp.asarray(c, jnp.float32)
    out = {"w": jnp.array([[1.0], [-1.0]]), "b": jnp.zeros(1)}
    return {"hidden_0": hidden, "output": out}


def test_the_input_is_multiplied_by_the_learned_scalar_of_the_first_layer():
    net = MLP(MLPConfig(sizes=(2, 2, 1), input_scale=True))
    init = net.init(KEY)
    scale = init["hidden_0"]["input_scale"]
    assert scale.shape == () and float(scale) == 1.0
    assert "input_scale" not in init["output"]
    out, trace = net.apply(_params(net, c=2.0), jnp.array([[1.0, 2.0]]))
    # (2·[1, 2]) W_0 = [2, 4 + 4] = [2, 8]; relu; [2, 8]·[1, −1] = −6
    np.testing.assert_allclose(trace.pre[0], [[2.0, 8.0]])
    np.testing.assert_allclose(out, [[-6.0]])
    plain = MLP(MLPConfig(sizes=(2, 2, 1)))
    assert "input_scale" not in plain.init(KEY)["hidden_0"]


def test_one_sgd_step_moves_the_scale_by_its_gradient_and_the_penalty_leaves_it_alone():
    """L = (f(x) − y)², x = [1, 2], y = 0, W_0 = [[1, 2], [0, 1]], w_out = [1, −1], c = 1:
    z = [1, 4], f = −3, ∂L/∂f = −6, ∂L/∂z = [−6, 6], ∂L/∂c = ∂L/∂z · (x W_0) = −6 + 24 = 18,
    ∂L/∂W_0 = c xᵀ ∂L/∂z = [[−6, 6], [−12, 12]]; the penalty (λ 0.5, s 1) adds
    4λ W_0 (W_0ᵀW_0 − I) = [[8, 20], [4, 8]] to W_0 only. SGD step 0.1."""
    settings = {"coefficient": 0.5, "scale": 1.0, "input_scale": True}
    config = _config.build(REMEDIES["parseval"].config, settings)
    draft = MLP(MLPConfig(sizes=(2, 2, 1)))
    method = compose(["parseval"], (config,), Context(draft, 0.1))
    net = MLP(MLPConfig(**method.merged("architecture", {"sizes": (2, 2, 1)})))
    assert net.config.input_scale
    method = compose(["parseval"], (config,), Context(net, 0.1))
    params = _params(net)
    x, y = jnp.array([[1.0, 2.0]]), jnp.array([[0.0]])
    grads = jax.grad(lambda p: jnp.sum((net.apply(p, x)[0] - y) ** 2))(params)
    np.testing.assert_allclose(grads["hidden_0"]["input_scale"], 18.0, rtol=1e-6)
    tx = method.transformation(optax.sgd(0.1))
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["hidden_0"]["input_scale"], 1.0 - 0.1 * 18.0, rtol=1e-6)
    expected = np.array([[1.0, 2.0], [0.0, 1.0]]) - 0.1 * np.array([[2.0, 26.0], [-8.0, 20.0]])
    np.testing.assert_allclose(new["hidden_0"]["w"], expected, rtol=1e-6)


def test_an_agent_gets_one_scale_per_network_and_conv_nets_refuse_it():
    small = {"hidden": "8,8", "rollout_steps": "64", "epochs": "1", "minibatches": "1"}
    e = make_experiment(
        "control", "parseval", {**small, "parseval.input_scale": "true"},
        seeds=1, steps=64, bin_size=64, metrics=(),
    )  # fmt: skip
    program = e.build()[0]
    params = program.learner.net.init(KEY)
    for net in ("policy", "value"):
        assert float(params[f"{net}/hidden_0"]["input_scale"]) == 1.0
        assert "input_scale" not in params[f"{net}/hidden_1"]
    state = program.init(jnp.zeros((1,), jnp.int32))  # one PPO update: both scales learn
    state, errors, _ = program.chunk(state, jnp.int32(0), 1)
    params = state["learner"]["params"]
    for net in ("policy", "value"):
        scale = float(params[f"{net}/hidden_0"]["input_scale"][0])
        assert np.isfinite(scale) and scale != 1.0, (net, scale)
    binary = {"data": "digits", "padding": "same", "channels": (2, 3, 4), "kernels": (3, 3, 3)}
    with pytest.raises(ConfigError, match="parseval.input_scale adds a learned scalar"):
        make_experiment("binary", "parseval", {**binary, "parseval.input_scale": "true"}, seeds=1)
    with pytest.raises(ConfigError, match="parseval.input_scale adds a learned scalar"):
        make_experiment("minatar", "parseval", {"parseval.input_scale": "true"}, seeds=1)
