"""Proximal policy optimization for one seed: settings, policies, GAE(λ), the loss.

The pieces the control benchmark composes (the rollout is in :mod:`lopkit.rl._rollout`):

* a policy head: Gaussian with a state-independent log-std (continuous actions) or
  categorical over logits (discrete actions); log-probabilities and entropies per sample;
* GAE(λ) by a reverse ``lax.scan`` (Schulman et al. 2016, eq. 16), episode ends cutting
  the recursion;
* the loss of one minibatch: clipped surrogate (Schulman et al. 2017, eq. 7) + value
  coefficient × mean squared value error − entropy coefficient × mean entropy.

Defaults are the official settings of Dohare et al. 2024 (``lop/rl/cfg/ant/*.yml``,
``run_ppo.py``; docs/design.md §13): rollout 2,048 steps of one env, 10 epochs × 16 minibatches,
γ 0.99, λ 0.95, clip 0.2, value coefficient 1, no entropy term, no gradient clipping,
advantages normalized over the rollout, no observation or reward normalization, a
time-limit truncation treated as terminal.

References:
  Schulman et al. High-dimensional continuous control using generalized advantage
  estimation. ICLR 2016. Schulman et al. Proximal policy optimization algorithms. 2017.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError

LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO (Schulman et al. 2017) with the official settings of Dohare et al. 2024
    (docs/design.md §13)."""

    rollout_steps: int = field(2048, "env steps per env in each rollout", positive=True)
    envs_per_agent: int = field(1, "parallel envs of one agent (official: 1)", positive=True)
    epochs: int = field(10, "passes over each rollout", positive=True)
    minibatches: int = field(16, "minibatches per epoch", positive=True)
    gamma: float = field(0.99, "γ: discount", unit_interval=True)
    gae_lambda: float = field(0.95, "λ of GAE(λ)", unit_interval=True)
    clip_ratio: float = field(
        0.2, "ε: the probability ratio is clipped to [1 − ε, 1 + ε]", positive=True
    )
    value_coef: float = field(1.0, "weight of the mean squared value error", nonnegative=True)
    entropy_coef: float = field(
        0.0, "weight of the entropy bonus (official: none)", nonnegative=True
    )
    max_grad_norm: float = field(
        0.0, "clip the gradient's global norm (0: no clipping)", nonnegative=True
    )
    normalize_advantages: bool = field(True, "advantages normalized over the rollout")
    normalize_observations: bool = field(False, "observations scaled by running mean and std")
    normalize_rewards: bool = field(False, "rewards scaled by the running std of the return")
    bootstrap_truncation: bool = field(
        False, "at a time-limit truncation bootstrap from V(final obs) (official: terminal)"
    )
    log_std_init: float = field(0.0, "initial log-std of the Gaussian policy")

    @property
    def batch(self) -> int:
        """Samples per rollout (all the agent's envs)."""
        return self.rollout_steps * self.envs_per_agent

    @property
    def updates(self) -> int:
        """Learner updates (minibatch steps) per rollout."""
        return self.epochs * self.minibatches

    def check(self) -> None:
        if self.batch % self.minibatches:
            raise ConfigError(
                f"rollout_steps × envs_per_agent ({self.batch}) must be a multiple of "
                f"minibatches ({self.minibatches})"
            )
        if self.batch // self.minibatches < 2 and self.normalize_advantages:
            raise ConfigError("minibatches of one sample cannot be normalized; use fewer")


# ---- policies ---------------------------------------------------------------------------
def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log N(a; μ, σ²) summed over action dims: mean, action ``[B, A]``, log_std ``[A]``."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Σ_a (log σ_a + ½ log 2πe), a scalar (the same for every state)."""
    return jnp.sum(log_std + 0.5 * (LOG_2PI + 1.0))


def categorical_log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
    """log softmax(logits)[a]. logits ``[B, A]``, int action ``[B]`` → ``[B]``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """−Σ p log p per row ``[B]``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def log_prob(out: dict[str, jax.Array], action: jax.Array, discrete: bool) -> jax.Array:
    if discrete:
        return categorical_log_prob(out["policy"], action)
    return gaussian_log_prob(out["policy"], out["log_std"], action)


def entropy(out: dict[str, jax.Array], discrete: bool) -> jax.Array:
    """Mean entropy of the policy over the batch (a scalar)."""
    if discrete:
        return jnp.mean(categorical_entropy(out["policy"]))
    return gaussian_entropy(out["log_std"])


def sample(key: jax.Array, out: dict[str, jax.Array], discrete: bool) -> jax.Array:
    """An action per row: categorical draw (int32 ``[B]``) or μ + σ·ξ (``[B, A]``, unclipped:
    the env clamps, as the official code leaves it to MuJoCo)."""
    if discrete:
        return jax.random.categorical(key, out["policy"], axis=-1).astype(jnp.int32)
    return gaussian_action(out, jax.random.normal(key, out["policy"].shape, out["policy"].dtype))


def gaussian_action(out: dict[str, jax.Array], noise: jax.Array) -> jax.Array:
    """μ + σ·ξ for a given draw ξ ~ N(0, 1) of the policy's shape (unclipped)."""
    return out["policy"] + jnp.exp(out["log_std"]) * noise


# ---- advantages -------------------------------------------------------------------------
def gae(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    last_value: jax.Array,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """GAE(λ) advantages and returns by a reverse scan over time.

    δ_t = r_t + γ(1 − d_t)V_{t+1} − V_t, A_t = δ_t + γλ(1 − d_t)A_{t+1}, V_T = last_value;
    d_t = 1 when the episode ended with step t (the next observation is a reset's).
    rewards, values, dones ``[T, …]``; last_value ``[…]``. Returns (A, A + V), ``[T, …]``.
    """
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    notdone = 1.0 - dones.astype(values.dtype)
    deltas = rewards + gamma * notdone * next_values - values

    def body(carry, inputs):
        delta, nd = inputs
        carry = delta + gamma * lam * nd * carry
        return carry, carry

    _, adv = jax.lax.scan(body, jnp.zeros_like(last_value), (deltas, notdone), reverse=True)
    return adv, adv + values


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """(x − mean) / (std + ε) over all entries (the official code's advantage normalization)."""
    return (x - x.mean()) / (x.std() + eps)


# ---- loss -------------------------------------------------------------------------------
def ppo_loss(
    out: dict[str, jax.Array], batch: dict[str, jax.Array], config: PPOConfig, discrete: bool
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The loss of one minibatch and its parts.

    ratio r = exp(log π(a|s) − log π_old(a|s));
    L = −mean min(r·Â, clip(r, 1 − ε, 1 + ε)·Â) + c_v·mean (V(s) − R)² − c_e·mean H(π(·|s)).
    batch: ``action``, ``log_prob`` (old), ``advantage``, ``return``, each with leading ``[B]``.
    """
    logp = log_prob(out, batch["action"], discrete)
    ratio = jnp.exp(logp - batch["log_prob"])
    adv = batch["advantage"]
    eps = config.clip_ratio
    policy_loss = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - eps, 1 + eps) * adv))
    value_loss = jnp.mean((out["value"] - batch["return"]) ** 2)
    ent = entropy(out, discrete)
    total = policy_loss + config.value_coef * value_loss - config.entropy_coef * ent
    clipped = jnp.mean((jnp.abs(ratio - 1.0) > eps).astype(jnp.float32))
    return total, {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": ent,
        "clip_fraction": clipped,
    }


def shuffled_minibatches(key: jax.Array, data: Any, epochs: int, minibatches: int) -> Any:
    """``epochs`` fresh permutations of the ``[N, …]`` leaves of ``data``, each cut into
    ``minibatches`` → leaves ``[epochs·minibatches, N / minibatches, …]``."""
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, epochs))
    order = perms.reshape(epochs * minibatches, n // minibatches)
    return jax.tree_util.tree_map(lambda x: x[order], data)
