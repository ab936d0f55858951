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
  of all those weights 0 (found through the same pytree paths as the weights) — unless
  ``reset_optimizer_moments`` is off.

Conv layers: a channel is a unit (its kernel slice ``[kh, kw, c_in]``, its bias, and its
slices of the next conv kernel or its rows of the first fc layer after a flatten; see
:class:`lopkit.nets.UnitLayer`); its activity is averaged over batch × height × width.

Two details of the official code, as options (off by default: the paper's Algorithm 1):

* ``next_bias_correction``: the official code also keeps a running mean of every unit's
  activation, m_i ← η m_i + (1 − η) mean h_i, and when it replaces unit i adds its mean
  contribution to the next layer's bias, b_next ← b_next + w_out,i · m_i / (1 − η^age_i),
  so that the next layer's input does not jump when the unit's outgoing weights go to 0
  (dense → dense layers only);
* ``reset_optimizer_moments``: Algorithm 1 zeroes the optimizer moments of the replaced
  weights; the official PPO code (``lop/algos/gnt.py`` used with plain Adam) does not.
  Both are set for the PPO benchmarks, ``control`` and ``ant`` (docs/design.md §13: Adam
  moments not reset, next-layer bias corrected).

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
from lopkit._errors import ConfigError
from lopkit._seeds import any_seed
from lopkit.methods._base import Context, Parts, Remedy, UnitRule
from lopkit.methods._resets import (
    fresh_incoming,
    require_unit_layers,
    reset_units_everywhere,
)
from lopkit.nets._units import UnitLayer, get, outgoing_rows, replace


@dataclasses.dataclass(frozen=True)
class CBPConfig:
    """Continual backprop (Dohare et al. 2024). Defaults: the slowly-changing-regression
    settings (ρ 1e-4, m 100, η 0.99); other benchmarks set their own."""

    replacement_rate: float = field(
        1e-4, "ρ: fraction of eligible units replaced per step", unit_interval=True, axis=True
    )
    maturity_threshold: int = field(
        100, "m: a unit is eligible once its age exceeds m", nonnegative=True, axis=True
    )
    decay_rate: float = field(
        0.99, "η: decay of the utility's running average", open_unit=True, axis=True
    )
    utility: str = field(
        "contribution",
        "utility type",
        choices=("contribution", "adaptable_contribution"),
    )
    reset_optimizer_moments: bool = field(
        True, "zero the optimizer moments of replaced weights (Algorithm 1; official PPO: no)"
    )
    next_bias_correction: bool = field(
        False, "add a replaced unit's mean contribution to the next layer's bias (official code)"
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
    y = unit_activity(h, layer.units) * _sum_last(w_out).sum(0)
    if adaptable:
        w_in = jnp.abs(get(params, layer.incoming)).reshape(-1, layer.units)
        y = y / jnp.maximum(_sum_last(w_in.T), 1e-12)
    return y


def _sum_last(a: jax.Array) -> jax.Array:
    """``a.sum(-1)`` as a product with a vector of ones: XLA:CPU hands a small reduction
    to a library call that costs ~25 µs per 100 × 100 weight matrix (profiled on permuted
    quick: most of CBP's cost per step), a matrix–vector product ~1 µs."""
    return a @ jnp.ones((a.shape[-1],), a.dtype)


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


def fresh_slots(key: jax.Array, params: Any, layer: UnitLayer, k: int) -> jax.Array:
    """Fresh incoming weights for ``k`` replacement slots, slot j drawn from its own key
    (``key`` for slot 0, ``fold_in(key, j)`` after), so that what the first slots get does
    not depend on ``k``: a run whose ρ is swept beside larger values (a larger ``k``)
    replaces its units with exactly the weights it would draw alone."""
    first = fresh_incoming(key, params, layer, 1)
    if k == 1:
        return first
    rest = jax.vmap(
        lambda j: fresh_incoming(jax.random.fold_in(key, j), params, layer, 1)[..., 0],
        out_axes=-1,
    )(jnp.arange(1, k))
    return jnp.concatenate([first, rest], axis=-1)


def next_bias_path(layer: UnitLayer) -> tuple[str, ...]:
    """The bias of the layer the unit layer feeds (``(next, "w")`` → ``(next, "b")``)."""
    return (*layer.outgoing[:-1], "b")


def corrected_next_bias(
    params: Any, layer: UnitLayer, idx: jax.Array, active: jax.Array, mean: jax.Array
) -> Any:
    """b_next + Σ_j active_j · w_out[idx_j] · mean[idx_j] (the official code's correction)."""
    w_out = get(params, layer.outgoing)  # [units, out]
    delta = jnp.sum(jnp.where(active[:, None], w_out[idx] * mean[idx][:, None], 0.0), axis=0)
    path = next_bias_path(layer)
    return replace(params, path, get(params, path) + delta)


def _build(config: CBPConfig, ctx: Context) -> Parts:
    layers = require_unit_layers(ctx, "cbp")
    rate = (ctx.ceiling or config).replacement_rate  # a swept ρ is traced: size by its largest
    ks = [max_replacements(rate, layer.units) for layer in layers]
    adaptable = config.utility == "adaptable_contribution"
    eta = config.decay_rate
    if config.next_bias_correction:
        for layer in layers:
            if layer.out_group != 1 or layer.out_axis != 0:
                raise ConfigError(
                    "cbp.next_bias_correction needs dense layers feeding dense layers; layer "
                    f"{layer.name!r} feeds a conv kernel, a flatten or CReLU features"
                )

    def init(params):
        return [
            {
                "age": jnp.zeros((layer.units,), jnp.int32),
                "utility": jnp.zeros((layer.units,), jnp.float32),
                "pending": jnp.zeros((), jnp.float32),
                "replaced": jnp.zeros((), jnp.int32),
                **(
                    {"mean_activation": jnp.zeros((layer.units,), jnp.float32)}
                    if config.next_bias_correction
                    else {}
                ),
            }
            for layer in layers
        ]

    def layer_step(st, params, opt_state, layer, h, key, i, k):
        y = contribution(params, layer, h, adaptable)
        age = st["age"] + 1
        utility = eta * st["utility"] + (1.0 - eta) * y
        eligible = age > config.maturity_threshold
        count, pending = replacement_count(eligible, st["pending"], config.replacement_rate)
        extra = {}
        if config.next_bias_correction:
            mean = eta * st["mean_activation"] + (1.0 - eta) * h.reshape(-1, layer.units).mean(0)
            extra["mean_activation"] = mean

        # ⌊r⌋ is 0 on most steps (ρ·#eligible = 0.01 per step for 100 units at ρ 1e-4), so
        # the choice of units (a sort for k > 1), the fresh draw and the reset run only on
        # steps where some seed replaces one; on the others nothing is replaced, exactly as
        # the rule says.
        def replace(carry):
            p, o, age, utility, replaced, extra = carry
            idx, active = lowest_utilities(utility, age, eligible, count, eta, k)
            if config.next_bias_correction:
                corrected = extra["mean_activation"] / (1.0 - eta ** age.astype(jnp.float32))
                p = corrected_next_bias(p, layer, idx, active, corrected)
            fresh = fresh_slots(jax.random.fold_in(key, i), p, layer, k)
            p, o = reset_units_everywhere(
                p, o, layer, idx, active, fresh, reset_moments=config.reset_optimizer_moments
            )
            keep = jnp.ones_like(age, dtype=bool).at[idx].set(~active)
            age, utility = jnp.where(keep, age, 0), jnp.where(keep, utility, 0.0)
            extra = {name: jnp.where(keep, v, 0.0) for name, v in extra.items()}
            return p, o, age, utility, replaced + active.sum(), extra

        carry = (params, opt_state, age, utility, st["replaced"], extra)
        params, opt_state, age, utility, replaced, extra = jax.lax.cond(
            any_seed(count >= 1), replace, lambda c: c, carry
        )
        new = {"age": age, "utility": utility, "pending": pending, "replaced": replaced, **extra}
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
