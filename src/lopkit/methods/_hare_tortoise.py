"""Hare & tortoise: a fast network that learns, a slow one that predicts.

The hare (the params) is trained as usual. After every update the tortoise follows it as
an exponential moving average,

    θ_T ← m · θ_T + (1 − m) · θ_H,

and every K updates the hare is reset to the tortoise (θ_H ← θ_T; with
``reset_optimizer`` its optimizer state too, as at a fresh start). The tortoise predicts:
the online error, the probes and an agent's actions are the tortoise's (the
``evaluation`` part, docs/design.md §5). For a PPO agent that means the rollout is played
by the tortoise and the hare is updated from it with the usual importance ratio (the
rollout's log-probabilities are the tortoise's).

What lopkit fixes that a reader of the paper must choose: the EMA runs after the step's
unit rules (so a unit reset in the hare reaches the tortoise gradually), and the reset
comes after that step's EMA update. The optimizer state is kept at a reset by default.

References:
  Lee, Cho, Kim, Kim, Min, Choo & Lyle. Slow and steady wins the race: maintaining
  plasticity with hare and tortoise networks. ICML 2024, §4 (EMA momentum 0.999; the
  hare periodically reset to the tortoise; the tortoise used for prediction).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy, UnitRule
from lopkit.methods._resets import fresh_optimizer_state


@dataclasses.dataclass(frozen=True)
class HareTortoiseConfig:
    """Hare & tortoise (Lee et al. 2024): EMA momentum 0.999."""

    momentum: float = field(
        0.999, "m: θ_T ← m·θ_T + (1 − m)·θ_H after every update", open_unit=True, axis=True
    )
    reset_every: int = field(1000, "K: the hare is reset to the tortoise every K updates",
                             positive=True)  # fmt: skip
    reset_optimizer: bool = field(False, "also give the hare a fresh optimizer state at a reset")


def _build(config: HareTortoiseConfig, ctx: Context) -> Parts:
    m = config.momentum

    def init(params):
        # a copy: the state must not share buffers with θ (the engine donates it)
        return {"slow": jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), params)}

    def apply(state, params, opt_state, trace, key, step):
        slow = jax.tree_util.tree_map(lambda s, p: m * s + (1.0 - m) * p, state["slow"], params)

        def reset(carry):
            _, o = carry
            return slow, fresh_optimizer_state(o, slow) if config.reset_optimizer else o

        # ``step`` is the same for every seed: a real branch even under vmap
        check = (step + 1) % config.reset_every == 0
        params, opt_state = jax.lax.cond(check, reset, lambda c: c, (params, opt_state))
        return {"slow": slow}, params, opt_state

    def evaluation(state, params):
        return state["slow"]

    return Parts(unit_rule=UnitRule(init, apply), evaluation=evaluation)


HARE_TORTOISE = Remedy(
    name="hare_tortoise",
    summary="a slow EMA network predicts; the fast one learns and is reset to it every K steps",
    source="Lee et al. 2024 (ICML), hare & tortoise networks",
    config=HareTortoiseConfig,
    build=_build,
    parts=("unit_rule", "evaluation"),
)
