"""ReDo: recycle dormant units every F steps.

Every F steps (after updates F, 2F, …), in every hidden layer, each unit i with dormancy
score s_i = E|h_i| / ((1/U) Σ_k E|h_k|) ≤ τ (:func:`lopkit.metrics.dormant_scores`) is
recycled: fresh incoming weights from the init distribution, bias 0 (per-unit extras to
their reset values), outgoing weights 0, and the optimizer moments of all those weights 0;
optionally the optimizer's step counts too.

The expectation E|h_i|. Sokar et al. take it over a batch of inputs at the reset step. With
batch size 1 (slowly-changing regression) one example says almost nothing, so lopkit
keeps, like continual backprop, a running average a_i ← η·a_i + (1 − η)·mean|h_i| over the
steps (on each step's batch, averaged over CReLU halves or conv positions), bias-corrected
per unit by its age (â_i = a_i / (1 − η^age_i), age = steps since the unit was created).
``decay_rate = 0`` uses the step's batch alone, as the paper does with its batch.

Where implementations differ: the paper and its code reset Adam's moments of recycled
units; optax keeps a single step count for all parameters, so ``reset_count`` restarts
Adam's bias correction for the whole network (an option, off by default). Some code
normalizes the score by the layer SUM rather than the mean (scores divided by U).

References:
  Sokar, Agarwal, Castro & Evci. The dormant neuron phenomenon in deep reinforcement
  learning. ICML 2023, Algorithm 1 (τ 0.1 — 0.025 also used —, F 1000 gradient steps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy, UnitRule
from lopkit.methods._cbp import unit_activity
from lopkit.methods._resets import (
    fresh_incoming,
    require_unit_layers,
    reset_units_everywhere,
    zero_counts,
)
from lopkit.metrics import dormant_scores
from lopkit.nets._units import UnitLayer


@dataclasses.dataclass(frozen=True)
class ReDoConfig:
    """ReDo (Sokar et al. 2023): τ 0.1, every 1000 steps."""

    threshold: float = field(
        0.1, "τ: units with dormancy score s_i ≤ τ are recycled", nonnegative=True, axis=True
    )
    reset_every: int = field(1000, "F: steps between recycling checks", positive=True)
    decay_rate: float = field(
        0.99,
        "η of the running mean of |h| (0: the step's batch only)",
        open_unit=True,
        axis=True,
    )
    reset_count: bool = field(False, "also reset the optimizer's step counts on recycling")


def recycling_rule(
    config: ReDoConfig,
    layers: tuple[UnitLayer, ...],
    measure: Callable[[UnitLayer, jax.Array, Any], jax.Array],
    with_grads: bool = False,
) -> UnitRule:
    """ReDo's rule with the per-unit quantity ``measure(layer, h, grads) -> [units]`` (≥ 0)
    in place of mean |h_i|: its running mean a_i (decay η, bias-corrected by the unit's
    age) gives the score s_i = a_i / mean_k a_k, and every ``reset_every`` steps the units
    with s_i ≤ τ are recycled. ``config`` needs ReDo's four fields; ``with_grads``: the
    rule receives the step's gradient (``grads``, else None). ReDo and ReGraMa share it."""
    eta = config.decay_rate

    def init(params):
        return [
            {
                "activity": jnp.zeros((layer.units,), jnp.float32),
                "age": jnp.zeros((layer.units,), jnp.int32),
                "replaced": jnp.zeros((), jnp.int32),
            }
            for layer in layers
        ]

    def recycle(carry, key):
        state, params, opt_state = carry
        any_reset = jnp.zeros((), bool)
        new_state = []
        for i, (layer, st) in enumerate(zip(layers, state, strict=True)):
            corrected = st["activity"] / (1.0 - eta ** st["age"].astype(jnp.float32))
            dormant = dormant_scores(corrected[None, :]) <= config.threshold
            fresh = fresh_incoming(jax.random.fold_in(key, i), params, layer)
            idx = jnp.arange(layer.units)
            params, opt_state = reset_units_everywhere(
                params, opt_state, layer, idx, dormant, fresh
            )
            any_reset = any_reset | dormant.any()
            new_state.append(
                {
                    "activity": jnp.where(dormant, 0.0, st["activity"]),
                    "age": jnp.where(dormant, 0, st["age"]),
                    "replaced": st["replaced"] + dormant.sum(),
                }
            )
        if config.reset_count:
            opt_state = zero_counts(opt_state, any_reset)
        return new_state, params, opt_state

    def apply(state, params, opt_state, trace, key, step, grads=None):
        tracked = []
        for layer, st, h in zip(layers, state, trace.hidden, strict=True):
            a = measure(layer, h, grads)
            tracked.append(
                {**st, "activity": eta * st["activity"] + (1.0 - eta) * a, "age": st["age"] + 1}
            )
        check = (step + 1) % config.reset_every == 0
        # ``step`` is the same for every seed, so this is a real branch even under vmap.
        return jax.lax.cond(
            check,
            lambda c: recycle(c, key),
            lambda c: c,
            (tracked, params, opt_state),
        )

    return UnitRule(init, apply, with_grads)


def _build(config: ReDoConfig, ctx: Context) -> Parts:
    layers = require_unit_layers(ctx, "redo")

    def activity(layer, h, grads):
        return unit_activity(h, layer.units)

    return Parts(unit_rule=recycling_rule(config, layers, activity))


REDO = Remedy(
    name="redo",
    summary="every F steps recycle dormant units (score ≤ τ): fresh in, zero out, moments reset",
    source="Sokar et al. 2023 (ICML)",
    config=ReDoConfig,
    build=_build,
    parts=("unit_rule",),
)
