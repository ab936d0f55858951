"""Self-normalized resets (SNR): reset a unit whose silence is improbable given its history.

A unit *fires* on a step when its activation is positive on at least one example of the
step's batch (for CReLU: either half; for conv layers: at any position). Per unit:

* ``age``: steps since it last fired (0 on a step where it fires);
* its inter-firing intervals (the age + 1 at each firing) are summed and counted since the
  unit was created, giving its firing-rate estimate p̂ = count / sum;
* under the null hypothesis "the unit still fires with rate p̂", a silence of a steps has
  probability (1 − p̂)^a (geometric inter-firing times); the unit is reset when its age
  exceeds the q-quantile of that distribution,
  τ = max(τ_min, ⌈ln(1 − q) / ln(1 − p̂)⌉), i.e. when the silence is rejected at level 1 − q.
  A unit with no recorded firing yet has τ = τ_min.

A reset gives fresh incoming weights from the init distribution, bias 0, outgoing weights
0, zero optimizer moments, age 0, and an empty firing history.

How faithful this is: the paper's algorithm box was not available to us; this is its
documented idea (a per-neuron hypothesis test on the time since the neuron last fired,
with one hyper-parameter, the rejection percentile) implemented as best understood. The
authors' code differs in details we did not reproduce: one version keeps a histogram of
each neuron's inter-firing times and takes its empirical percentile, another fits an
exponential (threshold −ln(1 − q)/λ̂); both re-estimate thresholds only periodically (a
threshold at most doubles per re-estimate), and the histogram version counts ages in
examples rather than steps and floors the threshold at one batch (100 examples). τ_min plays
that floor's role here: with batch size 1 and no floor, a healthy unit firing half the
time would be reset on 1% of its silences.

References:
  Farias & Jozefiak. Self-normalized resets for plasticity in continual learning.
  ICLR 2025 (rejection percentile; official code github.com/ajozefiak/SelfNormalizedResets,
  default percentile 0.99).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy, UnitRule, layer_by_layer
from lopkit.methods._resets import require_unit_layers, reset_units_where_any


@dataclasses.dataclass(frozen=True)
class SNRConfig:
    """SNR (Farias & Jozefiak 2025): percentile 0.99 (authors' code); τ_min 100 steps."""

    percentile: float = field(
        0.99,
        "q: reset when a silence exceeds the q-quantile of the unit's law",
        open_unit=True,
        axis=True,
    )
    min_threshold: int = field(
        100, "τ_min: no unit is reset before this many silent steps", positive=True, axis=True
    )


def fired(h: jax.Array, units: int) -> jax.Array:
    """bool ``[units]``: positive on some example (or position, or CReLU half).

    h: ``[batch, …, g·units]`` with feature ``p·units + i`` belonging to unit i.
    """
    return (h.reshape(-1, units) > 0).any(0)


def silence_threshold(total: jax.Array, count: jax.Array, config: SNRConfig) -> jax.Array:
    """τ per unit from its interval sum and count (float ``[units]``)."""
    rate = jnp.where(count > 0, count / jnp.maximum(total, 1.0), 1.0)
    rate = jnp.clip(rate, 1e-12, 1.0 - 1e-7)
    # jnp, not math: a swept percentile or threshold is a traced scalar
    level = jnp.log1p(-jnp.asarray(config.percentile, jnp.float32))
    tau = jnp.ceil(level / jnp.log1p(-rate))
    floor = jnp.asarray(config.min_threshold, jnp.float32)
    return jnp.maximum(jnp.where(count > 0, tau, 0.0), floor)


def _build(config: SNRConfig, ctx: Context) -> Parts:
    layers = require_unit_layers(ctx, "snr")

    def init(params):
        return [
            {
                "age": jnp.zeros((layer.units,), jnp.int32),
                "interval_sum": jnp.zeros((layer.units,), jnp.float32),
                "interval_count": jnp.zeros((layer.units,), jnp.float32),
                "replaced": jnp.zeros((), jnp.int32),
            }
            for layer in layers
        ]

    def layer_step(i, layer, st, params, opt_state, h, key, step):
        on = fired(h, layer.units)
        interval = (st["age"] + 1).astype(jnp.float32)
        total = st["interval_sum"] + jnp.where(on, interval, 0.0)
        count = st["interval_count"] + on
        age = jnp.where(on, 0, st["age"] + 1)
        reset = age.astype(jnp.float32) > silence_threshold(total, count, config)
        idx = jnp.arange(layer.units)
        params, opt_state = reset_units_where_any(
            params, opt_state, layer, idx, reset, jax.random.fold_in(key, i)
        )
        new = {
            "age": jnp.where(reset, 0, age),
            "interval_sum": jnp.where(reset, 0.0, total),
            "interval_count": jnp.where(reset, 0.0, count),
            "replaced": st["replaced"] + reset.sum(),
        }
        return new, params, opt_state

    return Parts(unit_rule=UnitRule(init, layer_by_layer(layers, layer_step)))


SNR = Remedy(
    name="snr",
    summary="self-normalized resets: reset a unit silent for longer than its firing history allows",
    source="Farias & Jozefiak 2025 (ICLR)",
    config=SNRConfig,
    build=_build,
    parts=("unit_rule",),
)
