"""C-CHAIN: reduce churn, the change of the network's outputs off the training batch.

Each step adds to the loss

    λ_t · C(θ),   C(θ) = mean_{s ∈ B_ref} mean_j (f_θ(s)_j − f_θ⁻(s)_j)²

with θ⁻ the parameters the previous step's gradient was taken at (the network one update
ago, held fixed) and B_ref a reference batch that is not the training batch: here the
``reference_size`` most recent inputs the learner saw before this step (a ring buffer in
the term's state; rows not yet filled are left out). For an agent, f is the policy's
output (the mean or logits), as in the official PPO code (``outputs="all"``: every output,
the value included).

λ_t keeps a constant relative scale between the two losses (the paper's automatic
adjustment, introduced by CHAIN): λ_t = β · |L̄| / (C̄ + 1e-8), with L̄ and C̄ running means
(bias-corrected exponential, decay η) of the benchmark's loss and of C over the steps,
and λ_t = ``initial_coef`` during the first ``warmup`` steps. λ_t is held fixed within a
step (no gradient flows through it).

Where the paper and its code differ, and what lopkit does:
  * the running means: the code averages the last 100 (DMC) or 50 (Gym control) PPO
    iterations' losses; lopkit updates every step, exponentially (η 0.99 ≈ 100 updates);
  * the main loss: the code scales against the policy loss alone; lopkit's L is the
    benchmark's whole loss (for PPO the policy + value + entropy loss);
  * the code's Gym-control variant also floors λ at 1 (``min_coef``, off by default) and
    restarts λ at each task; its DMC variant (β 0.05, λ 100 for 50 iterations, no floor) is
    lopkit's default, with the warm-up counted in updates;
  * the code skips the term on its first two updates; here θ⁻ starts as θ₀, so the first
    step's term is 0 with zero gradient;
  * C is the mean over output dimensions, as in the code (the paper writes ‖·‖²).

References:
  Tang, Obando-Ceron, Castro, Courville & Berseth. Mitigating plasticity loss in
  continual reinforcement learning by reducing churn. ICML 2025 (C-CHAIN).
  Tang & Berseth. Improving deep reinforcement learning by reducing the chain effect of
  value and policy churn. NeurIPS 2024 (CHAIN, the automatic λ).
  Public code read (not copied): bluecontra/C-CHAIN, crl_dmc/crl_run_ppo_c_chain_dmc.py
  (β 0.05; λ = β·mean|L_pg| / mean L_reg; θ⁻ = his_agent_list[-2]) and
  crl_gym_classic_control/control_train_aligned_c_chain.py (λ = max(β·|L|/L_reg, 1)).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Objective, Parts, Remedy


@dataclasses.dataclass(frozen=True)
class CChainConfig:
    """C-CHAIN (Tang et al. 2025): β 0.05 and λ 100 for the first updates (the official DMC
    code's settings); the reference batch is the last 32 inputs (the Gym code's batch)."""

    relative_scale: float = field(
        0.05, "β: λ_t = β · |L̄| / C̄ (the target ratio of the two losses)", nonnegative=True,
        axis=True,
    )  # fmt: skip
    decay_rate: float = field(
        0.99, "η of the running means L̄ and C̄ (per step)", open_unit=True, axis=True
    )
    initial_coef: float = field(1.0, "λ during the warm-up", nonnegative=True, axis=True)
    warmup: int = field(50, "steps before λ adapts", nonnegative=True)
    min_coef: float = field(
        0.0, "floor of λ (the Gym-control code's 1; 0: none)", nonnegative=True, axis=True
    )
    reference_size: int = field(32, "|B_ref|: the most recent inputs kept", positive=True)
    outputs: str = field(
        "policy",
        "an agent's outputs whose churn counts: policy (the code's) or all (value too)",
        choices=("policy", "all"),
    )


def churn(out: Any, prev: Any, mask: jax.Array, outputs: str = "all") -> jax.Array:
    """mean over the masked rows of the mean over output dims of (out − prev)²; for an
    agent's dict of outputs, the policy's (``outputs="policy"``) or the sum over all."""
    if isinstance(out, dict) and outputs == "policy" and "policy" in out:
        out, prev = out["policy"], prev["policy"]
    total = jnp.zeros((), jnp.float32)
    rows = jnp.maximum(mask.sum(), 1)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(prev), strict=True):
        if a.ndim == 0 or a.shape[0] != mask.shape[0]:  # not per example (a log-std)
            total = total + jnp.mean((a - b) ** 2)
            continue
        per_row = ((a - b) ** 2).reshape(a.shape[0], -1).mean(1)
        total = total + jnp.sum(jnp.where(mask, per_row, 0.0)) / rows
    return total


def _build(config: CChainConfig, ctx: Context) -> Parts:
    net = ctx.net
    shape = input_shape(net)
    size = config.reference_size
    eta = config.decay_rate

    def init(params):
        return {
            # copies: the state must not share buffers with θ (the engine donates it)
            "prev": jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), params),
            "ref": jnp.zeros((size, *shape), jnp.float32),
            "filled": jnp.zeros((), jnp.int32),
            "loss": jnp.zeros((), jnp.float32),
            "churn": jnp.zeros((), jnp.float32),
            "count": jnp.zeros((), jnp.int32),
        }

    def coefficient(state):
        n = state["count"].astype(jnp.float32)
        correction = 1.0 - eta**n
        safe = jnp.where(correction > 0, correction, 1.0)
        loss_bar, churn_bar = state["loss"] / safe, state["churn"] / safe
        adaptive = config.relative_scale * jnp.abs(loss_bar) / (churn_bar + 1e-8)
        lam = jnp.where(state["count"] < config.warmup, config.initial_coef, adaptive)
        return jax.lax.stop_gradient(jnp.maximum(lam, config.min_coef))

    def term(state, params, x, y, key, step):
        ref = state["ref"]
        mask = jnp.arange(size) < state["filled"]
        out = net.apply(params, ref)[0]
        prev = jax.lax.stop_gradient(net.apply(state["prev"], ref)[0])
        c = churn(out, prev, mask, config.outputs)
        return coefficient(state) * c, jax.lax.stop_gradient(c)

    def update(state, params, x, y, loss, c, step):
        rows = x.reshape((-1, *shape)).astype(jnp.float32)
        ref = jnp.concatenate([rows, state["ref"]])[:size]  # newest first
        return {
            "prev": params,
            "ref": ref,
            "filled": jnp.minimum(state["filled"] + rows.shape[0], size),
            "loss": eta * state["loss"] + (1.0 - eta) * loss,
            "churn": eta * state["churn"] + (1.0 - eta) * c,
            "count": state["count"] + 1,
        }

    return Parts(objective=Objective(init, term, update))


def input_shape(net: Any) -> tuple[int, ...]:
    """The shape of one input of ``net`` (an image net's ``input_shape``, an MLP's
    ``sizes[0]``, an agent's ``observations``)."""
    config = net.config
    if getattr(config, "input_shape", None):  # an agent's () means: no image torso
        return tuple(config.input_shape)
    if getattr(config, "sizes", None):
        return (int(config.sizes[0]),)
    if getattr(config, "observations", None):
        return (int(config.observations),)
    raise ConfigError(
        f"c_chain keeps a reference batch of inputs, but cannot tell the input shape of "
        f"{type(net).__name__} (a config with input_shape, sizes or observations is needed)"
    )


C_CHAIN = Remedy(
    name="c_chain",
    summary="churn reduction: + λ_t·mean‖f_θ(s) − f_θ⁻(s)‖² on a reference batch, λ_t auto-scaled",
    source="Tang et al. 2025 (ICML), C-CHAIN; λ_t as in Tang & Berseth 2024 (NeurIPS), CHAIN",
    config=CChainConfig,
    build=_build,
    parts=("objective",),
)
