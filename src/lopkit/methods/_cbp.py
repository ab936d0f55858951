"""Continual backpropagation (CBP): selective reinitialization of low-utility units.

For every hidden unit i of every hidden layer, after each update:

* age_i ← age_i + 1;
* y_i = mean|h_i| · Σ_k |w_out,ik| (``contribution``), or that divided by Σ_j |w_in,ji|
  (``adaptable_contribution``), with h the unit's activations on the step's batch and the
  weights after the update;
* u_i ← η u_i + (1 − η) y_i, bias-corrected û_i = u_i / (1 − η^age_i);
* among the *eligible* units (age > maturity threshold m), r ← r + ρ·#eligible;
  replace ⌊r⌋ units with the lowest û and carry the fraction, r ← r − ⌊r⌋;
* a replaced unit gets fresh incoming weights from the init distribution, bias 0 (and
  per-unit extras reset), outgoing weights 0, age 0, utility 0, and the optimizer moments
  of all those weights 0 (found through the same pytree paths as the weights).

Conv layers: a channel is a unit (its kernel slice ``[kh, kw, c_in]``, its bias, and its
slices of the next conv kernel or its rows of the first fc layer after a flatten; see
:class:`lopkit.nets.UnitLayer`); its activity is averaged over batch × height × width.

The official code also adds the replaced unit's mean contribution to the next layer's
bias; the paper's algorithm does not, and neither do we.

References:
  Dohare et al. Loss of plasticity in deep continual learning. Nature 632 (2024),
  Methods "Continual backpropagation" and Algorithm 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._seeds import any_seed
from lopkit.methods._base import Context, Parts, Remedy, UnitRule
from lopkit.methods._resets import (
    fresh_incoming,
    require_unit_layers,
    reset_units_everywhere,
)
from lopkit.nets._units import UnitLayer, get, outgoing_rows


@dataclasses.dataclass(frozen=True)
class CBPConfig:
    """Continual backprop (Dohare et al. 2024). Defaults: the slowly-changing-regression
    settings (ρ 1e-4, m 100, η 0.99); other benchmarks set their own."""

    replacement_rate: float = field(
        1e-4, "ρ: fraction of eligible units replaced per step", unit_interval=True
    )
    maturity_threshold: int = field(
        100, "m: a unit is eligible once its age exceeds m", nonnegative=True
    )
    decay_rate: float = field(0.99, "η: decay of the utility's running average", open_unit=True)
    utility: str = field(
        "contribution",
        "utility type",
        choices=("contribution", "adaptable_contribution"),
    )


def max_replacements(replacement_rate: float, units: int) -> int:
    """Most units one step can replace: ⌊frac + ρ·n⌋ ≤ ⌈ρ·n⌉ (frac < 1); at least 1."""
    return max(1, math.ceil(replacement_rate * units))


def unit_activity(h: jax.Array, units: int) -> jax.Array:
    """mean |h| per unit over the batch (and CReLU halves or conv positions).

    h: ``[batch, …, g·units]`` with feature ``p·units + i`` belonging to unit i → ``[units]``.
    """
    return jnp.abs(h).reshape(-1, units).mean(0)


def contribution(params: Any, layer: UnitLayer, h: jax.Array, adaptable: bool) -> jax.Array:
    """The instantaneous utility y of every unit of ``layer`` ([units])."""
    w_out = jnp.abs(outgoing_rows(get(params, layer.outgoing), layer))
    y = unit_activity(h, layer.units) * w_out.sum((0, 2))
    if adaptable:
        w_in = jnp.abs(get(params, layer.incoming)).reshape(-1, layer.units)
        y = y / jnp.maximum(w_in.sum(0), 1e-12)
    return y


def replacement_count(
    eligible: jax.Array, pending: jax.Array, replacement_rate: float
) -> tuple[jax.Array, jax.Array]:
    """(⌊r⌋, r − ⌊r⌋) with r = pending + ρ·#eligible: the units to replace now, and the
    fraction carried to the next step."""
    pending = pending + replacement_rate * eligible.sum()
    count = jnp.floor(pending)
    return count, pending - count


def lowest_utilities(
    utility: jax.Array,
    age: jax.Array,
    eligible: jax.Array,
    count: jax.Array,
    decay_rate: float,
    k: int,
) -> tuple[jax.Array, jax.Array]:
    """(idx int [k], active bool [k]): the k eligible units of lowest bias-corrected utility
    û = u / (1 − η^age), ties to the lower index; the first ``count`` of them are replaced."""
    corrected = utility / (1.0 - decay_rate ** age.astype(jnp.float32))
    score = jnp.where(eligible, corrected, jnp.inf)
    if k == 1:  # = top_k(−score, 1), ties to the lower index too, without a sort
        idx = jnp.argmin(score).astype(jnp.int32)[None]
    else:
        idx = jax.lax.top_k(-score, k)[1]
    active = (jnp.arange(k) < count) & eligible[idx]
    return idx, active


def select_replacements(
    utility: jax.Array, age: jax.Array, pending: jax.Array, config: CBPConfig, k: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Choose the units to replace this step.

    Returns (idx int [k], active bool [k], pending'): the k lowest bias-corrected utilities
    among eligible units, of which the first ⌊pending + ρ·#eligible⌋ are replaced.
    """
    eligible = age > config.maturity_threshold
    count, pending = replacement_count(eligible, pending, config.replacement_rate)
    idx, active = lowest_utilities(utility, age, eligible, count, config.decay_rate, k)
    return idx, active, pending


def _build(config: CBPConfig, ctx: Context) -> Parts:
    layers = require_unit_layers(ctx, "cbp")
    ks = [max_replacements(config.replacement_rate, layer.units) for layer in layers]
    adaptable = config.utility == "adaptable_contribution"

    def init(params):
        return [
            {
                "age": jnp.zeros((layer.units,), jnp.int32),
                "utility": jnp.zeros((layer.units,), jnp.float32),
                "pending": jnp.zeros((), jnp.float32),
                "replaced": jnp.zeros((), jnp.int32),
            }
            for layer in layers
        ]

    def layer_step(st, params, opt_state, layer, h, key, i, k):
        y = contribution(params, layer, h, adaptable)
        age = st["age"] + 1
        utility = config.decay_rate * st["utility"] + (1.0 - config.decay_rate) * y
        eligible = age > config.maturity_threshold
        count, pending = replacement_count(eligible, st["pending"], config.replacement_rate)

        def replace(carry):
            p, o, age, utility, replaced = carry
            idx, active = lowest_utilities(utility, age, eligible, count, config.decay_rate, k)
            fresh = fresh_incoming(jax.random.fold_in(key, i), p, layer, k)
            p, o = reset_units_everywhere(p, o, layer, idx, active, fresh)
            keep = jnp.ones_like(age, dtype=bool).at[idx].set(~active)
            age, utility = jnp.where(keep, age, 0), jnp.where(keep, utility, 0.0)
            return p, o, age, utility, replaced + active.sum()

        carry = (params, opt_state, age, utility, st["replaced"])
        params, opt_state, age, utility, replaced = jax.lax.cond(
            any_seed(count >= 1), replace, lambda c: c, carry
        )
        new = {"age": age, "utility": utility, "pending": pending, "replaced": replaced}
        return new, params, opt_state

    def apply(state, params, opt_state, trace, key, step):
        new_state = []
        for i, (layer, st, k) in enumerate(zip(layers, state, ks, strict=True)):
            st, params, opt_state = layer_step(
                st, params, opt_state, layer, trace.hidden[i], key, i, k
            )
            new_state.append(st)
        return new_state, params, opt_state

    return Parts(unit_rule=UnitRule(init, apply))


CBP = Remedy(
    name="cbp",
    summary="continual backprop: replace a fraction ρ of mature low-utility units each step",
    source="Dohare et al. 2024 (Nature), Algorithm 1",
    config=CBPConfig,
    build=_build,
    parts=("unit_rule",),
)
