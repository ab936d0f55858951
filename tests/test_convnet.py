"""The continual-ImageNet conv net: shapes, units declared consistently, CBP on channels."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopkit._errors import ConfigError
from lopkit.methods import CBPConfig, Context, compose
from lopkit.nets._convnet import ConvNet, ConvNetConfig
from lopkit.nets._units import get

SMALL = {"channels": (3, 4, 5), "kernels": (3, 3, 3), "hidden": (6, 7)}


@pytest.mark.parametrize(
    "shape, padding, maps, flat",
    [
        ((32, 32, 3), "valid", [(14, 14), (6, 6), (2, 2)], 2 * 2 * 128),  # the paper's
        ((28, 28, 1), "valid", [(12, 12), (5, 5), (1, 1)], 128),
        ((28, 28, 1), "same", [(14, 14), (7, 7), (3, 3)], 3 * 3 * 128),
        ((8, 8, 1), "same", [(4, 4), (2, 2), (1, 1)], 128),
    ],
)
def test_shapes(shape, padding, maps, flat):
    net = ConvNet(ConvNetConfig(input_shape=shape, padding=padding, outputs=3))
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0))
    out, trace = jax.eval_shape(net.apply, params, jnp.ones((5, *shape)))
    assert out.shape == (5, 3)
    assert [h.shape[1:3] for h in trace.hidden[:3]] == maps
    assert [h.shape[-1] for h in trace.hidden] == [32, 64, 128, 128, 128]
    assert params["conv_0"]["w"].shape == (5, 5, shape[2], 32)
    assert params["fc_0"]["w"].shape == (flat, 128)
    assert net.names == ["conv_0", "conv_1", "conv_2", "fc_0", "fc_1", "output"]


def test_too_small_input_for_valid_padding_names_the_fix():
    with pytest.raises(ConfigError, match="padding='same'"):
        ConvNet(ConvNetConfig(input_shape=(8, 8, 1)))


@pytest.mark.parametrize("padding, kernels", [("valid", (5, 3, 3)), ("same", (4, 3, 2))])
def test_im2col_equals_xla_convolution(padding, kernels):
    config = ConvNetConfig(input_shape=(28, 28, 2), padding=padding, kernels=kernels)
    a, b = ConvNet(config), ConvNet(dataclasses.replace(config, conv="xla"))
    params = jax.jit(a.init)(jax.random.PRNGKey(1))
    x = jax.random.uniform(jax.random.PRNGKey(2), (3, 28, 28, 2))
    (oa, ta), (ob, tb) = jax.jit(a.apply)(params, x), jax.jit(b.apply)(params, x)
    for za, zb in zip(ta.pre, tb.pre, strict=True):
        np.testing.assert_allclose(za, zb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(oa, ob, rtol=1e-5, atol=1e-5)


def test_init_kaiming_uniform_zero_biases_and_optional_zero_output():
    net = ConvNet(ConvNetConfig(input_shape=(8, 8, 1), padding="same", zero_output=True))
    params = jax.jit(net.init)(jax.random.PRNGKey(0))
    w = params["conv_1"]["w"]
    bound = np.sqrt(2.0) * np.sqrt(3.0 / (3 * 3 * 32))
    assert float(jnp.abs(w).max()) <= bound and float(jnp.abs(w).max()) > 0.9 * bound
    assert all(float(jnp.abs(params[n]["b"]).max()) == 0 for n in net.names)
    assert float(jnp.abs(params["output"]["w"]).max()) == 0


def test_unit_layers_match_params_and_trace():
    net = ConvNet(ConvNetConfig(input_shape=(16, 16, 2), padding="same", **SMALL))
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0))
    _, trace = jax.eval_shape(net.apply, params, jnp.ones((2, 16, 16, 2)))
    assert [layer.name for layer in net.unit_layers] == net.names[:-1]
    assert [layer.out_axis for layer in net.unit_layers] == [-2, -2, 0, 0, 0]
    # 16 → 8 → 4 → 2 after the pools: fc_0 reads 2·2 positions × 5 channels
    assert [layer.out_group for layer in net.unit_layers] == [1, 1, 4, 1, 1]
    for layer, h in zip(net.unit_layers, trace.hidden, strict=True):
        w_in, b = get(params, layer.incoming), get(params, layer.bias)
        w_out = get(params, layer.outgoing)
        assert w_in.shape[-1] == b.shape[0] == h.shape[-1] == layer.units
        assert w_out.shape[layer.out_axis] == layer.out_group * layer.units


@functools.partial(jax.jit, static_argnums=0)
def _cbp_step(net, params, x):
    """One CBP rule application that must replace exactly one unit per layer."""
    config = CBPConfig(replacement_rate=1e-9, maturity_threshold=0, accumulate=True)
    method = compose(["cbp"], (config,), Context(net, 0.01))
    rule = method.unit_rules[0]
    tx = optax.sgd(0.01, momentum=0.9)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    opt_state = tx.update(grads, tx.init(params), params)[1]  # nonzero momentum everywhere
    state = rule.init(params)
    for s in state:  # one replacement due now, every unit eligible
        s["pending"] = jnp.ones((), jnp.float32)
        s["age"] = jnp.full_like(s["age"], 10)
    _, trace = net.apply(params, x)
    return rule.apply(state, params, opt_state, trace, jax.random.PRNGKey(5), 0)


def test_cbp_replaces_a_channel_with_fresh_kernel_zero_bias_and_zero_outgoing():
    net = ConvNet(ConvNetConfig(input_shape=(16, 16, 2), padding="same", **SMALL))
    params = jax.jit(net.init)(jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map(lambda a: a + 0.1, params)  # nonzero biases to see resets
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 16, 16, 2))
    state, new, opt_state = _cbp_step(net, params, x)
    trace_m = opt_state[0].trace  # optax.sgd momentum: (TraceState, EmptyState)
    positions = 2 * 2  # 16 → 8 → 4 → 2 after the pools
    replaced_units = [int(np.flatnonzero(np.asarray(s["age"]) == 0)[0]) for s in state]
    for i, layer in enumerate(net.unit_layers):
        replaced = replaced_units[i]
        w_old, w_new = get(params, layer.incoming), get(new, layer.incoming)
        assert not np.allclose(w_old[..., replaced], w_new[..., replaced])  # fresh
        assert float(jnp.abs(w_new[..., replaced]).max()) <= layer.init_bound
        keep = np.arange(layer.units) != replaced
        kept_old, kept_new = np.asarray(w_old[..., keep]), np.asarray(w_new[..., keep])
        changed = kept_old != kept_new  # only the previous layer's replaced channel's rows
        assert np.all(kept_new[changed] == 0) and changed.mean() < 0.5
        assert float(get(new, layer.bias)[replaced]) == 0.0
        # the next layer's replaced unit got fresh incoming weights afterwards (layers are
        # processed in order), its column is left out
        out = np.asarray(get(new, layer.outgoing))
        if i + 1 < len(replaced_units):
            out = np.delete(out, replaced_units[i + 1], axis=-1)
        if layer.name in ("conv_0", "conv_1"):  # next kernel [kh, kw, units, c_out]
            assert np.all(out[:, :, replaced, :] == 0) and np.all(out[:, :, keep, :] != 0)
        elif layer.name == "conv_2":  # fc_0 rows p·C + i at every position p
            rows = np.arange(positions) * layer.units + replaced
            assert np.all(out[rows] == 0)
            assert np.all(np.delete(out, rows, axis=0) != 0)
        else:
            assert np.all(out[replaced] == 0) and np.all(out[keep] != 0)
        m_in = np.asarray(get(trace_m, layer.incoming))
        assert np.all(m_in[..., replaced] == 0)
        assert np.all(m_in[..., keep][changed] == 0) and np.all(m_in[..., keep][~changed] != 0)
        assert float(get(trace_m, layer.bias)[replaced]) == 0.0


def test_dropout_only_in_training_and_only_on_fc_features():
    net = ConvNet(ConvNetConfig(input_shape=(8, 8, 1), padding="same", dropout=0.5, **SMALL))
    params = jax.jit(net.init)(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (16, 8, 8, 1))
    apply = jax.jit(net.apply)
    a, ta = apply(params, x)
    b, _ = apply(params, x)
    c, tc = apply(params, x, jax.random.PRNGKey(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # conv features, and fc_0's (traced before its dropout), are those of evaluation
    for ha, hc in zip(ta.hidden[:4], tc.hidden[:4], strict=True):
        np.testing.assert_allclose(ha, hc, rtol=1e-6)
    assert not np.allclose(ta.hidden[4], tc.hidden[4])  # fc_1 reads fc_0's dropped features
