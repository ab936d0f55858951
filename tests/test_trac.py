"""TRAC's behaviour while its scale is clamped at 0 (docs/remedies.md, ``trac``): the
official rule keeps integrating h into the tuners there, which is what lets the scale
explode when the gradient turns; ``clamped="surrogate"`` drops the h that push the clamped
scale further down. Both against a float64 oracle of the equations on a tiny net, and the
mechanism on a 1-D problem whose optimum moves from behind θ_ref to in front of it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopkit import _config
from lopkit._errors import ConfigError
from lopkit.methods import TRACConfig, trac

BETAS = (0.9, 0.99, 0.999)


def _f(p, x):
    """A tiny net by hand: relu(x W0 + b0) W1 + b1."""
    h = jnp.maximum(x @ p["w0"] + p["b0"], 0.0)
    return h @ p["w1"] + p["b1"]


def _params():
    k0, k1 = jax.random.split(jax.random.PRNGKey(3))
    return {
        "w0": jax.random.normal(k0, (3, 4)) * 0.5,
        "b0": jnp.full((4,), 0.1),
        "w1": jax.random.normal(k1, (4, 2)) * 0.5,
        "b1": jnp.zeros((2,)),
    }


def _batches():
    """Four steps on a target y, eight on −3y, six on y again: S falls below 0 at two task
    changes, and at the second one h > 0 arrives while S < 0 (checked below)."""
    kx, ky = jax.random.split(jax.random.PRNGKey(11))
    x = jax.random.normal(kx, (4, 3))
    y = jax.random.normal(ky, (4, 2))
    phases = ((4, 1.0), (8, -3.0), (6, 1.0))
    return [(x + 0.05 * i, c * y) for n, c in phases for i in range(n)]


def _loss(p, x, y):
    return jnp.mean((_f(p, x) - y) ** 2)


def _oracle(theta0, batches, lr, s_init, clamped, eps=1e-8):
    """TRAC over SGD from its equations in float64 (numpy), Δ carried; ``clamped`` as the
    option: "surrogate" feeds min(h, 0) to the tuners while S_t < 0. The gradient at each
    θ_t from the tiny net (jax, float32). Returns θ and the S after every step."""
    from scipy.special import erfi as erfi64

    treedef = jax.tree_util.tree_structure(theta0)
    ref = [np.asarray(a, np.float64) for a in jax.tree_util.tree_leaves(theta0)]
    theta, delta = [a.copy() for a in ref], [np.zeros_like(a) for a in ref]
    b = np.asarray(BETAS, np.float64)
    s, v, sigma = np.zeros(len(b)), np.zeros(len(b)), np.full(len(b), 1e-8)
    scales = []
    for x, y in batches:
        q = treedef.unflatten([jnp.asarray(a, jnp.float32) for a in theta])
        g = [np.asarray(a, np.float64) for a in jax.tree_util.tree_leaves(jax.grad(_loss)(q, x, y))]
        h = sum(float(np.dot(d.ravel(), gg.ravel())) for d, gg in zip(delta, g, strict=True))
        if clamped == "surrogate" and s.sum() < 0:
            h = min(h, 0.0)
        delta = [d - lr * gg for d, gg in zip(delta, g, strict=True)]
        v = b**2 * v + h**2
        sigma = b * sigma - h
        s = s_init / erfi64(1 / np.sqrt(2)) * erfi64(sigma / (np.sqrt(2) * np.sqrt(v) + eps))
        scales.append(s.sum())
        theta = [r + d * max(s.sum(), 0.0) for r, d in zip(ref, delta, strict=True)]
    return treedef.unflatten(theta), np.asarray(scales)


def _run(batches, lr, s_init, clamped):
    t = optax.chain(optax.sgd(lr), trac(BETAS, s_init, clamped=clamped))
    params = _params()
    state = t.init(params)
    scales = []
    for x, y in batches:
        g = jax.grad(_loss)(params, x, y)
        updates, state = t.update(g, state, params, grads=g)
        params = optax.apply_updates(params, updates)
        scales.append(float(jnp.sum(state[1].s)))
    return params, np.asarray(scales)


@pytest.mark.parametrize("clamped", ["raw", "surrogate"])
def test_trac_matches_a_float64_oracle_through_a_clamped_phase(clamped):
    """Eighteen SGD steps under TRAC, S < 0 on some of them, against the oracle; s_init 0.5
    keeps S of order 1 (float32 is then exact to ~1e-6 relative)."""
    lr, s_init, batches = 0.05, 0.5, _batches()
    params, scales = _run(batches, lr, s_init, clamped)
    expected, oracle_scales = _oracle(_params(), batches, lr, s_init, clamped)
    assert (oracle_scales < 0).any() and (oracle_scales > 0.1).any()  # both regimes occur
    np.testing.assert_allclose(scales, oracle_scales, rtol=1e-4, atol=1e-6)
    for a, e in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(expected),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), e, rtol=1e-4, atol=1e-6)


def test_the_surrogate_drops_a_positive_h_while_clamped():
    """The readings agree until a step that meets h > 0 with S < 0. There the official rule
    lowers S further; the surrogate feeds h = 0, so σ_j and √v_j both shrink by β_j and
    every s_j, hence S, stays where it was (by hand: erfi(β σ / (√2 β √v + ε)) = erfi(σ /
    (√2 √v + ε)) up to ε)."""
    lr, s_init, batches = 0.05, 0.5, _batches()
    _, raw = _run(batches, lr, s_init, "raw")
    _, surrogate = _run(batches, lr, s_init, "surrogate")
    differ = np.flatnonzero(raw != surrogate)
    assert differ.size  # the sequence has such a step: the test is not void
    k = int(differ[0])
    np.testing.assert_array_equal(raw[:k], surrogate[:k])
    assert raw[k - 1] < 0
    assert raw[k] < raw[k - 1] - 0.01  # the official rule: h > 0 pushes S further down
    np.testing.assert_allclose(surrogate[k], surrogate[k - 1], rtol=1e-5)


def _ray(clamped, behind_steps, ahead_steps=1000):
    """½‖θ − θ*‖² with θ* = θ_ref + c·Δ on TRAC's ray (Δ one fixed base step, the base
    silent after it): c = −1 for ``behind_steps`` (the best scale is < 0, so S is clamped
    and h = |Δ|² > 0 every step), then c = +1 (best scale 1). Returns (S, loss) per step."""
    t = trac(betas=(0.9, 0.99, 0.999, 0.9999), s_init=1e-8, clamped=clamped)
    ref = jnp.array([0.5, -0.5])
    delta = jnp.array([-0.1, 0.0])
    state = t.init({"w": ref})
    _, state = t.update({"w": delta}, state, {"w": ref}, grads={"w": jnp.zeros(2)})

    def step(carry, c):  # θ_1 = θ_ref (S_1 = 0)
        w, state = carry
        target = ref + c * delta
        update, state = t.update({"w": jnp.zeros(2)}, state, {"w": w}, grads={"w": w - target})
        w = w + update["w"]
        return (w, state), (jnp.sum(state.s), 0.5 * jnp.sum((w - target) ** 2))

    cs = jnp.asarray([-1.0] * behind_steps + [1.0] * ahead_steps)
    _, (scales, losses) = jax.jit(lambda s: jax.lax.scan(step, (ref, s), cs))(state)
    return np.asarray(scales), np.asarray(losses)


@pytest.mark.parametrize("behind", [400, 700])
def test_a_long_clamped_phase_makes_the_official_rule_overshoot(behind):
    """The mechanism of the SCR explosions: while clamped, the official rule integrates
    h > 0 open loop (S far below 0); when the optimum moves ahead, S crosses 0 with the
    size of that integration — orders of magnitude past the optimum 1 — and the loss
    explodes. The surrogate keeps the tuners where the clamp found them and settles near 1.
    (With under ~250 clamped steps the official rule does not overshoot here either.)"""
    raw, raw_loss = _ray("raw", behind)
    assert raw[:behind].min() < -1e6  # the open-loop build-up while θ = θ_ref
    after = raw[behind:]
    assert not np.isfinite(after).all() or after.max() > 1e3
    assert not np.isfinite(raw_loss).all() or raw_loss[behind:].max() > 1e3
    surrogate, surrogate_loss = _ray("surrogate", behind)
    assert surrogate[:behind].min() > -1e-6  # S stays at the clamp, not below it
    assert np.isfinite(surrogate).all()
    assert 0.5 < surrogate[behind:].max() < 2.0
    assert abs(surrogate[-100:].mean() - 1.0) < 0.2
    assert surrogate_loss[behind:].max() < 0.01  # ½‖Δ‖² = 0.005 at the reference


def test_clamped_rejects_unknown_values():
    with pytest.raises(ConfigError, match="clamped must be one of raw, surrogate"):
        _config.build(TRACConfig, {"clamped": "clip"})


def test_the_surrogate_runs_the_same_alone_and_in_a_grid():
    """docs/design.md §2 for the new reading: a grid over s_init on scr (task changes every
    50 steps, so the scale is clamped on some steps) equals each point run alone, bit for
    bit, and the surrogate acted (it differs from the official rule)."""
    from lopkit._experiment import make_experiment

    run = {"steps": 300, "bin_size": 100, "metrics": ()}
    settings = {"flip_period": 50, "trac.clamped": "surrogate"}

    def errors(extra, seeds):
        e = make_experiment("scr", "trac", {**settings, **extra}, seeds=seeds, **run)
        program, _ = e.build()
        seed_ids, values = e.runs()
        state = program.init(jnp.asarray(seed_ids), jax.tree_util.tree_map(jnp.asarray, values))
        _, errs, _ = program.chunk(state, jnp.int32(0), 3)
        return np.asarray(errs)

    grid = errors({"trac.s_init": "1e-8,1e-3"}, 2)
    for h, value in enumerate(("1e-8", "1e-3")):
        alone = errors({"trac.s_init": value}, 2)
        np.testing.assert_array_equal(grid[2 * h : 2 * h + 2], alone)
    official = errors({"trac.s_init": "1e-8,1e-3", "trac.clamped": "raw"}, 2)
    assert not np.array_equal(grid, official)
