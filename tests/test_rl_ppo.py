"""PPO's pieces against plain computations: GAE, the clipped loss, policies, minibatches."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit.rl import (
    PPOConfig,
    categorical_entropy,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    ppo_loss,
    running_stats,
    shuffled_minibatches,
    update_stats,
)


def gae_loop(rewards, values, dones, last_value, gamma, lam, xp=np):
    """GAE(λ) as the textbook backward loop over time (numpy, or jax.numpy under jit)."""
    t_max = rewards.shape[0]
    advantages = [None] * t_max
    carry = xp.zeros_like(last_value)
    for t in reversed(range(t_max)):
        next_value = last_value if t == t_max - 1 else values[t + 1]
        notdone = 1.0 - dones[t].astype(values.dtype)
        delta = rewards[t] + gamma * notdone * next_value - values[t]
        carry = delta + gamma * lam * notdone * carry
        advantages[t] = carry
    adv = xp.stack(advantages)
    return adv, adv + values


# Exact equality: with few optimizations XLA rounds the scan's a·b + c differently from the
# eager loop (1 ulp in 40% of the entries); optimized, both round alike.
@pytest.mark.optimized
def test_gae_scan_equals_the_python_loop():
    rng = np.random.default_rng(0)
    t, n = 64, 3
    rewards = rng.normal(size=(t, n)).astype(np.float32)
    values = rng.normal(size=(t, n)).astype(np.float32)
    dones = rng.random((t, n)) < 0.1
    last = rng.normal(size=(n,)).astype(np.float32)
    args = (rewards, values, dones, last)
    adv, ret = jax.jit(gae, static_argnums=(4, 5))(*args, 0.99, 0.95)
    # Exactly the loop's numbers when both are compiled (XLA fuses the same expressions) …
    loop = jax.jit(lambda *a: gae_loop(*a, 0.99, 0.95, xp=jnp))
    adv_loop, ret_loop = loop(*args)
    np.testing.assert_array_equal(np.asarray(adv), np.asarray(adv_loop))
    np.testing.assert_array_equal(np.asarray(ret), np.asarray(ret_loop))
    # … and the float64 textbook loop's up to float32 rounding.
    adv_ref, ret_ref = gae_loop(*(a.astype(np.float64) for a in args), 0.99, 0.95)
    np.testing.assert_allclose(np.asarray(adv), adv_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), ret_ref, rtol=1e-5, atol=1e-5)
    # λ = 1, γ = 1, no episode end: the advantage is the sum of future rewards + V_T − V_t.
    adv1, _ = gae(rewards[:, 0], values[:, 0], np.zeros(t, bool), last[0], 1.0, 1.0)
    expected = np.cumsum(rewards[::-1, 0])[::-1] + last[0] - values[:, 0]
    np.testing.assert_allclose(np.asarray(adv1), expected, rtol=1e-4, atol=1e-4)


def test_an_episode_end_cuts_the_recursion():
    rewards = np.ones(4, np.float32)
    values = np.zeros(4, np.float32)
    dones = np.array([False, True, False, False])
    adv, _ = gae(rewards, values, dones, np.float32(10.0), 0.5, 1.0)
    # steps 0–1 end an episode at 1: A_1 = 1, A_0 = 1 + 0.5·1; steps 2–3 bootstrap V_T = 10.
    np.testing.assert_allclose(np.asarray(adv), [1.5, 1.0, 1 + 0.5 * 6.0, 1 + 0.5 * 10.0])


def test_ppo_loss_and_clipping_on_hand_computed_values():
    config = PPOConfig(clip_ratio=0.2, value_coef=0.5, entropy_coef=0.01)
    logits = jnp.array([[0.0, math.log(4.0)], [0.0, math.log(4.0)]])  # π = (0.2, 0.8)
    out = {"policy": logits, "log_std": jnp.zeros(2), "value": jnp.array([1.0, 3.0])}
    batch = {
        "action": jnp.array([1, 0]),
        "log_prob": jnp.log(jnp.array([0.5, 0.5])),  # ratios 1.6 and 0.4
        "advantage": jnp.array([1.0, -2.0]),
        "return": jnp.array([2.0, 2.0]),
    }
    total, parts = ppo_loss(out, batch, config, discrete=True)
    # min(1.6·1, 1.2·1) = 1.2; min(0.4·−2, 0.8·−2) = −1.6 → policy loss −(1.2 − 1.6)/2 = 0.2
    entropy = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    np.testing.assert_allclose(parts["policy_loss"], 0.2, rtol=1e-5)
    np.testing.assert_allclose(parts["value_loss"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(parts["entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(parts["clip_fraction"], 1.0)
    np.testing.assert_allclose(total, 0.2 + 0.5 * 1.0 - 0.01 * entropy, rtol=1e-5)
    # Inside the clip range the objective is the plain surrogate −mean(r·Â).
    near = {**batch, "log_prob": jnp.log(jnp.array([0.8 / 1.1, 0.2 / 0.9]))}
    _, parts = ppo_loss(out, near, config, discrete=True)
    np.testing.assert_allclose(parts["policy_loss"], -(1.1 * 1.0 + 0.9 * -2.0) / 2, rtol=1e-5)
    np.testing.assert_allclose(parts["clip_fraction"], 0.0)


def test_gaussian_log_prob_and_entropy():
    mean = jnp.array([[0.0, 1.0]])
    log_std = jnp.array([0.0, math.log(2.0)])
    action = jnp.array([[1.0, 3.0]])
    expected = (-0.5 - 0.5 * math.log(2 * math.pi)) + (
        -0.5 * 1.0 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    )
    np.testing.assert_allclose(gaussian_log_prob(mean, log_std, action), [expected], rtol=1e-6)
    h = 0.5 * math.log(2 * math.pi * math.e) * 2 + math.log(2.0)
    np.testing.assert_allclose(gaussian_entropy(log_std), h, rtol=1e-6)
    np.testing.assert_allclose(categorical_entropy(jnp.zeros((1, 4))), [math.log(4.0)], rtol=1e-6)


def test_every_epoch_visits_every_sample_once():
    data = {"i": jnp.arange(32), "x": jnp.arange(64.0).reshape(32, 2)}
    batches = shuffled_minibatches(jax.random.PRNGKey(0), data, epochs=3, minibatches=4)
    assert batches["i"].shape == (12, 8) and batches["x"].shape == (12, 8, 2)
    for e in range(3):
        seen = np.sort(np.asarray(batches["i"][4 * e : 4 * e + 4]).reshape(-1))
        np.testing.assert_array_equal(seen, np.arange(32))
    np.testing.assert_array_equal(batches["x"][..., 0], 2 * batches["i"])  # rows stay together
    assert not np.array_equal(batches["i"][:4], batches["i"][4:8])  # fresh permutations


def test_running_statistics_match_the_pooled_moments():
    rng = np.random.default_rng(1)
    chunks = [rng.normal(3.0, 2.0, size=(50, 3)).astype(np.float32) for _ in range(4)]
    stats = running_stats((3,))
    for c in chunks:
        stats = update_stats(stats, jnp.asarray(c))
    pooled = np.concatenate(chunks)
    np.testing.assert_allclose(stats["mean"], pooled.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats["var"], pooled.var(0), rtol=1e-3)
