"""Rank metrics on matrices with known spectra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lopkit.metrics import (
    approximate_rank,
    effective_rank,
    feature_rank,
    singular_values,
    srank,
    stable_rank_classic,
)
from lopkit.metrics._linalg import eigh, eigvalsh

pytestmark = pytest.mark.unit  # the sub-minute tier (make test-unit): pure functions

DIAG = np.diag([4.0, 3.0, 2.0, 1.0])  # sigma sum 10, sigma^2 sum 30


def _rotated(sigmas, rows, seed=0):
    """U diag(sigmas) V^T with random orthonormal U [rows, r], V [r, r]."""
    rng = np.random.default_rng(seed)
    r = len(sigmas)
    u, _ = np.linalg.qr(rng.normal(size=(rows, r)))
    v, _ = np.linalg.qr(rng.normal(size=(r, r)))
    return (u * np.asarray(sigmas)) @ v.T


def _rank_one(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.outer(rng.normal(size=shape[0]), rng.normal(size=shape[1]))


def test_singular_values_descending():
    np.testing.assert_allclose(singular_values(_rotated([1.0, 5.0, 3.0], 7)), [5, 3, 1], rtol=1e-5)


@pytest.mark.parametrize("n", [1, 4, 7])
def test_identity_has_full_rank_under_every_definition(n):
    eye = np.eye(n)
    assert float(effective_rank(eye)) == pytest.approx(n, rel=1e-5)
    assert float(stable_rank_classic(eye)) == pytest.approx(n, rel=1e-5)
    for delta in (0.0, 0.01):
        assert int(srank(eye, delta)) == n
        assert int(approximate_rank(eye, delta)) == n
    assert int(feature_rank(eye)) == n  # sigma(I / sqrt(n)) = 1/sqrt(n) > 0.01


@pytest.mark.parametrize("shape", [(10, 6), (6, 10), (64, 32)])
def test_rank_one_is_one(shape):
    x = _rank_one(shape)
    assert float(effective_rank(x)) == pytest.approx(1.0, abs=1e-4)
    assert float(stable_rank_classic(x)) == pytest.approx(1.0, abs=1e-5)
    assert int(srank(x)) == 1
    assert int(srank(x, delta=0.0)) == 1
    assert int(approximate_rank(x)) == 1
    assert int(feature_rank(x)) == 1


@pytest.mark.parametrize(
    ("delta", "expected"),
    # cumulative sigma shares: 0.4, 0.7, 0.9, 1.0 (boundaries hit exactly at 0.3 and 0.1)
    [(0.0, 4), (0.01, 4), (0.1, 3), (0.25, 3), (0.3, 2), (0.35, 2), (0.6, 1), (0.65, 1)],
)
def test_srank_of_diag_4321(delta, expected):
    assert int(srank(DIAG, delta)) == expected


@pytest.mark.parametrize(
    ("delta", "expected"),
    # cumulative sigma^2 shares: 16/30, 25/30, 29/30, 1
    [(0.01, 4), (0.03, 4), (0.05, 3), (0.15, 3), (0.2, 2), (0.45, 2), (0.5, 1)],
)
def test_approximate_rank_of_diag_4321(delta, expected):
    assert int(approximate_rank(DIAG, delta)) == expected


def test_float_rounding_cannot_move_an_exact_boundary():
    # Without the tolerance in the cumulative-share comparison, SVD rounding makes some of
    # these give srank 2..30 (rank one, delta 0) or 3 (rotated diag(4,3,2,1), delta 0.3).
    for seed in range(20):
        x = _rank_one((300, 50), seed)
        assert int(srank(x, delta=0.0)) == 1
        assert int(approximate_rank(x, delta=0.0)) == 1
    for seed in range(5):
        x = _rotated([4.0, 3.0, 2.0, 1.0], rows=9, seed=seed)
        assert int(srank(x, delta=0.3)) == 2
        assert int(srank(x, delta=0.1)) == 3


def test_rotation_invariance_off_boundaries():
    x = _rotated([4.0, 3.0, 2.0, 1.0], rows=9)
    assert [int(srank(x, d)) for d in (0.01, 0.2, 0.35, 0.65)] == [4, 3, 2, 1]
    assert [int(approximate_rank(x, d)) for d in (0.01, 0.05, 0.2, 0.5)] == [4, 3, 2, 1]
    assert float(effective_rank(x)) == pytest.approx(float(effective_rank(DIAG)), rel=1e-5)


def test_effective_rank_and_classic_stable_rank_of_diag():
    p = np.array([0.4, 0.3, 0.2, 0.1])
    assert float(effective_rank(DIAG)) == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-5)
    assert float(stable_rank_classic(DIAG)) == pytest.approx(30 / 16, rel=1e-6)
    # a zero singular value contributes nothing (0 log 0 = 0)
    assert float(effective_rank(np.diag([2.0, 2.0, 0.0]))) == pytest.approx(2.0, rel=1e-5)


def test_feature_rank_scales_by_sqrt_n():
    # sigma(DIAG / sqrt(4)) = 2, 1.5, 1, 0.5
    assert int(feature_rank(DIAG)) == 4
    assert int(feature_rank(DIAG, eps=0.75)) == 3
    assert int(feature_rank(DIAG, eps=1.2)) == 2
    assert int(feature_rank(DIAG, eps=3.0)) == 0
    # duplicating the rows leaves Phi^T Phi / n, hence the feature rank, unchanged
    tall = np.concatenate([DIAG] * 25)
    assert int(feature_rank(tall, eps=1.2)) == 2


def test_all_zero_matrix_has_rank_zero():
    z = np.zeros((5, 3))
    for fn in (effective_rank, srank, approximate_rank, feature_rank, stable_rank_classic):
        assert float(fn(z)) == 0.0


def test_conv_features_flatten_channels_as_units():
    h = np.random.default_rng(2).normal(size=(2, 3, 3, 4))
    flat = h.reshape(18, 4)
    np.testing.assert_allclose(singular_values(h), singular_values(flat), rtol=1e-6)
    assert int(srank(h)) == int(srank(flat)) == 4


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), decay=st.floats(0.05, 1.0))
def test_rank_orderings(seed, decay):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(12, 6)) * decay ** np.arange(6)
    r = 6
    er, sr, ar = float(effective_rank(x)), int(srank(x)), int(approximate_rank(x))
    assert 1.0 - 1e-5 <= er <= r + 1e-4
    assert 1 <= ar <= sr <= r  # sigma^2 shares dominate sigma shares
    assert 1.0 - 1e-5 <= float(stable_rank_classic(x)) <= r + 1e-4


def test_vmap_over_seeds_equals_loop():
    xs = np.random.default_rng(3).normal(size=(3, 10, 5)) * 0.5 ** np.arange(5)
    fns = [
        singular_values,
        effective_rank,
        srank,
        approximate_rank,
        feature_rank,
        stable_rank_classic,
        lambda x: srank(x, delta=0.2),
    ]
    for fn in fns:
        batched = jax.jit(jax.vmap(fn))(xs)
        looped = np.stack([np.asarray(fn(x)) for x in xs])
        np.testing.assert_allclose(batched, looped, rtol=1e-5)


@pytest.mark.parametrize(
    "shape, dead, rank, scale",
    [
        ((1000, 100), 0, None, 1.0),  # a probe batch of a 100-unit layer
        ((1000, 100), 60, None, 1.0),  # 60 dead units: exact zero columns
        ((500, 64), 0, 5, 1.0),  # rank 5 (columns repeated)
        ((30, 80), 0, None, 1.0),  # wide: fewer examples than units
        ((8, 6, 6, 16), 0, None, 1e-12),  # conv features, tiny activations
        ((200, 50), 0, None, 1e12),  # huge activations
    ],
)
def test_gram_singular_values_match_lapack_svd(shape, dead, rank, scale):
    from lopkit.metrics._rank import singular_values, svd_singular_values

    phi = np.maximum(np.random.default_rng(0).normal(size=shape), 0).astype(np.float32)
    flat = phi.reshape(-1, shape[-1])
    if dead:
        flat[:, :dead] = 0.0
    if rank:
        flat[:] = np.repeat(flat[:, :rank], shape[-1] // rank + 1, axis=1)[:, : shape[-1]]
    phi = flat.reshape(shape) * np.float32(scale)
    fast, ref = np.asarray(singular_values(phi)), np.asarray(svd_singular_values(phi))
    assert fast.shape == ref.shape == (min(flat.shape),)
    assert np.all(np.diff(fast) <= 0) and np.all(fast >= 0)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=2e-6 * ref[0])
    if dead:  # a dead unit's singular value is exactly zero, not float noise
        assert np.sum(fast == 0) >= dead - (rank or 0)
    # The effective rank against float64 LAPACK: within 2e-5 (float32 LAPACK: ~1e-7; the
    # float noise of a rank-deficient matrix's null space weighs a little more here, 1.1e-5
    # for rank 5 of 64). Dead units are split off exactly: blurred with the small live
    # directions they cost 2–3e-5 on a PPO agent's features.
    exact = effective_rank_ref(np.linalg.svd(flat.astype(np.float64) * scale, compute_uv=False))
    np.testing.assert_allclose(effective_rank(phi), exact, rtol=2e-5)


def effective_rank_ref(s):
    p = s[s > 0] / s.sum()
    return np.exp(-(p * np.log(p)).sum())


def test_eigh_under_vmap_decomposes_one_matrix_per_call_with_the_batched_result():
    """metrics._linalg.eigh under (nested) vmap: the same eigenvalues and eigenvectors as
    LAPACK's batched call, and every eigh in the program has one matrix (no batch for jaxlib
    to split across the thread pool, which hung 2-device programs)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4, 6, 6)).astype(np.float32)
    sym = jnp.asarray(a @ np.swapaxes(a, -1, -2))
    w, v = jax.jit(jax.vmap(jax.vmap(eigh)))(sym)
    w_ref, v_ref = jnp.linalg.eigh(sym, symmetrize_input=True)
    np.testing.assert_array_equal(np.asarray(w), np.asarray(w_ref))
    np.testing.assert_array_equal(np.abs(np.asarray(v)), np.abs(np.asarray(v_ref)))
    np.testing.assert_array_equal(np.asarray(jax.vmap(eigvalsh)(sym[0])), np.asarray(w_ref[0]))

    jaxpr = jax.make_jaxpr(jax.vmap(jax.vmap(eigh)))(sym)

    def eigh_operands(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "eigh":
                yield eqn.invars[0].aval.shape
            for param in eqn.params.values():
                inner = getattr(param, "jaxpr", param)
                if hasattr(inner, "eqns"):
                    yield from eigh_operands(inner)

    shapes = list(eigh_operands(jaxpr.jaxpr))
    assert shapes and all(s == (6, 6) for s in shapes), shapes
