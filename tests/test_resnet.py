"""ResNet-18 for CIFAR: shapes, BatchNorm's two modes, running statistics never learned, units."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopkit.methods import CBPConfig, Context, compose
from lopkit.nets._resnet import ResNet, ResNetConfig
from lopkit.nets._units import get

TINY = ResNetConfig(input_shape=(8, 8, 2), widths=(3, 4), blocks=(1, 2), outputs=5)


def test_resnet18_structure():
    net = ResNet(ResNetConfig())
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0))
    out, trace = jax.eval_shape(net.apply, params, jnp.ones((2, 32, 32, 3)))
    assert out.shape == (2, 100)
    assert params["stem"]["conv"]["w"].shape == (3, 3, 3, 64)  # 3×3 stem, no max-pool
    assert [h.shape[1:] for h in trace.hidden] == [
        (32, 32, 64), (32, 32, 64), (16, 16, 128), (16, 16, 128),
        (8, 8, 256), (8, 8, 256), (4, 4, 512), (4, 4, 512),
    ]  # fmt: skip
    assert [("proj" in params[f"block_{i}"]) for i in range(8)] == [0, 0, 1, 0, 1, 0, 1, 0]
    weights = sum(a.size for a in jax.tree_util.tree_leaves(params))
    stats = sum(
        p[k].size for p in _bn_layers(params) for k in ("mean", "var")
    )  # running statistics
    assert weights - stats == 11_220_132  # torchvision's resnet18 with the CIFAR stem, 100 out


def _bn_layers(params):
    found = []

    def visit(node):
        if isinstance(node, dict):
            if "mean" in node and "var" in node:
                found.append(node)
            else:
                for v in node.values():
                    visit(v)

    visit(params)
    return found


def test_batchnorm_training_uses_the_batch_and_evaluation_the_running_statistics():
    net = ResNet(TINY)
    params = jax.jit(net.init)(jax.random.PRNGKey(0))
    x = 3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(1), (16, 8, 8, 2))
    _, train = jax.jit(net.train_apply)(params, x)
    z = train.pre[0]  # bn1 of block 0 in training: zero mean, unit variance per channel
    np.testing.assert_allclose(z.mean((0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.var((0, 1, 2)), 1.0, rtol=1e-3)
    # running statistics: r ← 0.9 r + 0.1 batch (unbiased variance), from mean 0 / var 1
    stem = jax.lax.conv_general_dilated(
        x, params["stem"]["conv"]["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    n = 16 * 8 * 8
    new = train.stats[("stem", "bn")]
    np.testing.assert_allclose(new["mean"], 0.1 * stem.mean((0, 1, 2)), rtol=1e-4, atol=1e-5)
    expected_var = 0.9 + 0.1 * stem.var((0, 1, 2)) * n / (n - 1)
    np.testing.assert_allclose(new["var"], expected_var, rtol=1e-4)
    # evaluation with the initial statistics (mean 0, var 1) is the identity normalization
    _, evaluation = jax.jit(net.apply)(params, x)
    assert not np.allclose(evaluation.pre[0], z)
    updated = net.with_stats(params, train)
    np.testing.assert_allclose(updated["stem"]["bn"]["mean"], new["mean"])
    assert evaluation.stats == {}


def test_running_statistics_are_not_learned_even_under_weight_decay():
    """After a step with L2 (a gradient term on every parameter) the statistics are exactly
    the running averages, and the training loss does not depend on them."""
    net = ResNet(TINY)
    params = jax.jit(net.init)(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 8, 8, 2))
    y = jnp.arange(8) % 5

    def loss(p):
        out, trace = net.train_apply(p, x)
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean(), trace

    @jax.jit
    def step(params):
        grads, trace = jax.grad(loss, has_aux=True)(params)
        tx = optax.chain(optax.add_decayed_weights(0.5), optax.sgd(0.1, momentum=0.9))
        updates, _ = tx.update(grads, tx.init(params), params)
        return grads, trace, net.with_stats(optax.apply_updates(params, updates), trace)

    grads, trace, stepped = step(params)
    for bn in _bn_layers(grads):
        assert float(jnp.abs(bn["mean"]).max()) == 0 and float(jnp.abs(bn["var"]).max()) == 0
    for path, stats in trace.stats.items():
        for k in ("mean", "var"):
            np.testing.assert_array_equal(get(stepped, (*path, k)), stats[k])


@functools.partial(jax.jit, static_argnums=0)
def _cbp_once(net, params, x):
    config = CBPConfig(replacement_rate=1e-9, maturity_threshold=0, accumulate=True)
    rule = compose(["cbp"], (config,), Context(net, 0.1)).unit_rules[0]
    tx = optax.sgd(0.1, momentum=0.9)
    opt_state = tx.update(jax.tree_util.tree_map(jnp.ones_like, params), tx.init(params))[1]
    state = rule.init(params)
    for s in state:
        s["pending"], s["age"] = jnp.ones(()), jnp.full_like(s["age"], 10)
    _, trace = net.train_apply(params, x)
    return rule.apply(state, params, opt_state, trace, jax.random.PRNGKey(3), 0)


def test_cbp_resets_a_block_channel_with_its_batchnorm():
    net = ResNet(TINY)
    assert [(layer.name, layer.units) for layer in net.unit_layers] == [
        ("block_0", 3), ("block_1", 4), ("block_2", 4)
    ]  # fmt: skip
    params = jax.jit(net.init)(jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map(lambda a: a + 0.3, params)  # no entry at its reset value
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 2))
    state, new, _ = _cbp_once(net, params, x)
    for layer, s in zip(net.unit_layers, state, strict=True):
        (i,) = np.flatnonzero(np.asarray(s["age"]) == 0)
        block = new[layer.name]
        assert not np.allclose(
            block["conv1"]["w"][..., i], params[layer.name]["conv1"]["w"][..., i]
        )
        assert float(jnp.abs(block["conv1"]["w"][..., i]).max()) <= layer.init_bound
        assert float(block["bn1"]["offset"][i]) == 0.0 and float(block["bn1"]["scale"][i]) == 1.0
        assert float(block["bn1"]["mean"][i]) == 0.0 and float(block["bn1"]["var"][i]) == 1.0
        assert np.all(np.asarray(block["conv2"]["w"])[:, :, i, :] == 0)
        np.testing.assert_array_equal(block["bn2"]["scale"], params[layer.name]["bn2"]["scale"])
