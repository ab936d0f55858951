"""Continual backpropagation (CBP): selective reinitialization of low-utility units.

For every hidden unit i of every hidden layer, after each update, as the official code
(``lop/algos/gnt.py``, ``GnT.test_features`` / ``update_utility`` / ``gen_new_features``)
computes it:

* age_i ← age_i + 1; bias correction c_i = 1 − η^age_i;
* the running mean activation m_i ← η m_i + (1 − η) mean h_i, ĥ_i = m_i / c_i;
* the instantaneous utility y_i, by ``utility``:

  - ``contribution`` (the paper's text, Methods "Continual backprop"):
    y_i = mean|h_i| · Σ_k |w_out,ik|;
  - ``adaptable_contribution`` (the official code's default, and what its configs for
    slowly-changing regression, permuted MNIST and continual ImageNet run):
    y_i = mean|h_i − ĥ_i| · mean_k |w_out,ik| / mean_j |w_in,ji| — the activation centred
    on its running mean, divided by the mean incoming weight magnitude (``gnt.py``
    ``update_utility``, the ``adaptable_contribution`` branch);

  with h the unit's activations on the step's batch and the weights after the update (the
  official ``contribution`` uses mean_k instead of Σ_k: a constant factor per layer, the
  same choices);
* u_i ← η u_i + (1 − η) y_i, bias-corrected û_i = u_i / c_i;
* among the *eligible* units (age > maturity threshold m), n = ρ·#eligible units are to be
  replaced this step:

  - ``accumulate`` off (the official default: ``GnT(accumulate=False)``, which the
    slowly-changing-regression and PPO configs leave unset): if n < 1, one unit with
    probability n (one uniform draw per layer and step, ``torch.rand(1) <= n``), else ⌊n⌋;
  - ``accumulate`` on (the official permuted-MNIST config's ``"accumulate": true``, and
    what ``ConvGnT`` and ``ResGnT`` — continual ImageNet, class-incremental CIFAR — always
    do): r ← r + n, replace ⌊r⌋ and carry the fraction, r ← r − ⌊r⌋;

  the units replaced are those of lowest û (ties to the lower index);
* a replaced unit gets fresh incoming weights from the init distribution, bias 0 (and
  per-unit extras reset), outgoing weights 0, age 0, utility 0, running mean 0, and the
  optimizer moments of all those weights 0 (found through the same pytree paths as the
  weights) — unless ``reset_optimizer_moments`` is off.

Conv layers: a channel is a unit (its kernel slice ``[kh, kw, c_in]``, its bias, and its
slices of the next conv kernel or its rows of the first fc layer after a flatten; see
:class:`lopkit.nets.UnitLayer`); its activity is averaged over batch × height × width. For
a channel feeding a flatten, the official ``ConvGnT`` pairs each spatial position's
activity with that position's outgoing weights before averaging; lopkit multiplies the
channel's mean activity by its mean outgoing weight (the same for the dense and conv→conv
cases).

Two further readings, as options:

* ``next_bias_correction``: when unit i is replaced, add its mean contribution to the next
  layer's bias, b_next ← b_next + w_out,i · ĥ_i, so that the next layer's input does not
  jump when the unit's outgoing weights go to 0 (dense → dense layers only). This is what
  the official code's comment in ``gen_new_features`` describes, but not what it computes:
  ``test_features`` sets the replaced unit's running mean to 0 before
  ``gen_new_features`` reads it, so the official correction adds 0. Off by default.
* ``reset_optimizer_moments``: Algorithm 1 and ``GnT.update_optim_params`` (with the
  official ``AdamGnT``) zero the optimizer moments of the replaced weights; the official PPO
  code uses plain Adam, whose moments ``update_optim_params`` does not reach.

References:
  Dohare et al. Loss of plasticity in deep continual learning. Nature 632 (2024),
  Methods "Continual backpropagation" and Algorithm 1; official code
  github.com/shibhansh/loss-of-plasticity, ``lop/algos/gnt.py``.
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
from lopkit.methods._base import Context, Parts, Remedy, UnitRule, layer_by_layer
from lopkit.methods._resets import (
    fresh_incoming,
    require_unit_layers,
    reset_units_everywhere,
)
from lopkit.nets._units import UnitLayer, get, outgoing_rows, replace


@dataclasses.dataclass(frozen=True)
class CBPConfig:
    """Continual backprop (Dohare et al. 2024). Defaults: the official ``GnT``'s (ρ 1e-4,
    η 0.99, no accumulation) with the paper's maturity 100 and contribution utility; every
    benchmark sets its official config's values (docs/remedies.md lists them)."""

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
        "utility: contribution (paper text) or adaptable_contribution (official code: "
        "mean-centred activity over mean input weight)",
        choices=("contribution", "adaptable_contribution"),
    )
    accumulate: bool = field(
        False,
        "carry the fractional replacement count over (official accumulate: true); off: "
        "below one unit per step, replace one with that probability (official default)",
    )
    reset_optimizer_moments: bool = field(
        True, "zero the optimizer moments of replaced weights (Algorithm 1; official PPO: no)"
    )
    next_bias_correction: bool = field(
        False,
        "add a replaced unit's mean contribution to the next layer's bias (the official "
        "code's comment; its code adds 0)",
    )


_DRAW = 0x1000  # fold_in tag of a layer's replacement draw (fresh weights use the index)


def max_replacements(replacement_rate: float, units: int) -> int:
    """Most units one step can replace: ⌊frac + ρ·n⌋ ≤ ⌈ρ·n⌉ (frac < 1); at least 1."""
    return max(1, math.ceil(replacement_rate * units))


def unit_activity(h: jax.Array, units: int) -> jax.Array:
    """mean |h| per unit over the batch (and CReLU halves or conv positions).

    h: ``[batch, …, g·units]`` with feature ``p·units + i`` belonging to unit i → ``[units]``.
    """
    return jnp.abs(h).reshape(-1, units).mean(0)


def contribution(
    params: Any, layer: UnitLayer, h: jax.Array, adaptable: bool, centre: jax.Array | None = None
) -> jax.Array:
    """The instantaneous utility y of every unit of ``layer`` ([units]).

    ``adaptable``: mean|h − centre| · mean|w_out| / mean|w_in| (``centre`` [units]: the
    bias-corrected running mean activation ĥ; 0 when None); else mean|h| · Σ|w_out|.
    """
    w_out = jnp.abs(outgoing_rows(get(params, layer.outgoing), layer))  # [g, units, rest]
    out_sum = _sum_last(w_out).sum(0)
    if not adaptable:
        return unit_activity(h, layer.units) * out_sum
    centred = h.reshape(-1, layer.units) - (0.0 if centre is None else centre)
    w_in = jnp.abs(get(params, layer.incoming)).reshape(-1, layer.units)  # [fan_in, units]
    out_mean = out_sum / (w_out.shape[0] * w_out.shape[2])
    in_mean = w_in.sum(0) / w_in.shape[0]
    return unit_activity(centred, layer.units) * out_mean / jnp.maximum(in_mean, 1e-12)


def _sum_last(a: jax.Array) -> jax.Array:
    """``a.sum(-1)`` as a product with a vector of ones: XLA:CPU hands a small reduction
    to a library call that costs ~25 µs per 100 × 100 weight matrix (profiled on permuted
    quick: most of CBP's cost per step), a matrix–vector product ~1 µs."""
    return a @ jnp.ones((a.shape[-1],), a.dtype)


def replacement_count(
    eligible: jax.Array,
    pending: jax.Array,
    replacement_rate: Any,
    accumulate: bool = True,
    draw: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(units to replace now, fraction carried to the next step), with n = ρ·#eligible.

    ``accumulate``: r = pending + n, (⌊r⌋, r − ⌊r⌋). Else (``draw``: a uniform number in
    [0, 1)): 1 if n < 1 and draw ≤ n, ⌊n⌋ if n ≥ 1, and nothing carried (``gnt.py``
    ``test_features``).
    """
    n = replacement_rate * eligible.sum()
    if not accumulate and draw is None:
        raise ValueError("a replacement count without accumulation needs a uniform draw")
    if accumulate:
        r = pending + n
        count = jnp.floor(r)
        return count, r - count
    lucky = (n > 0) & (draw <= n)
    count = jnp.where(n < 1, lucky.astype(n.dtype), jnp.floor(n))
    return count, pending


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
    utility: jax.Array,
    age: jax.Array,
    pending: jax.Array,
    config: CBPConfig,
    k: int,
    draw: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Choose the units to replace this step.

    Returns (idx int [k], active bool [k], pending'): the k lowest bias-corrected utilities
    among eligible units, of which the first :func:`replacement_count` are replaced.
    """
    eligible = age > config.maturity_threshold
    count, pending = replacement_count(
        eligible, pending, config.replacement_rate, config.accumulate, draw
    )
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
    keeps_mean = adaptable or config.next_bias_correction  # the running mean activation
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
                    if keeps_mean
                    else {}
                ),
            }
            for layer in layers
        ]

    def layer_step(i, layer, st, params, opt_state, h, key, step):
        k = ks[i]
        age = st["age"] + 1
        correction = 1.0 - eta ** age.astype(jnp.float32)
        extra, centre = {}, None
        if keeps_mean:
            mean = eta * st["mean_activation"] + (1.0 - eta) * h.reshape(-1, layer.units).mean(0)
            extra["mean_activation"] = mean
            centre = mean / correction
        y = contribution(params, layer, h, adaptable, centre)
        utility = eta * st["utility"] + (1.0 - eta) * y
        eligible = age > config.maturity_threshold
        draw = None if config.accumulate else jax.random.uniform(jax.random.fold_in(key, _DRAW + i))
        count, pending = replacement_count(
            eligible, st["pending"], config.replacement_rate, config.accumulate, draw
        )

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

    return Parts(unit_rule=UnitRule(init, layer_by_layer(layers, layer_step)))


CBP = Remedy(
    name="cbp",
    summary="continual backprop: replace a fraction ρ of mature low-utility units each step",
    source="Dohare et al. 2024 (Nature), Algorithm 1",
    config=CBPConfig,
    build=_build,
    parts=("unit_rule",),
)
