"""One seed's learner: state, and the update step (pure; the seed axis never appears).

The learner state is a dict pytree::

    {"params", "opt_state", "rules": [state of each unit rule]}

A step, for a batch (x, y) at global step t with PRNG key k:

1. at the first step of a new task, the benchmark's own events (e.g. a head reset), then
   the method's boundary events, in order;
2. forward pass (dropout keyed by k), loss, gradient; a network with a training mode
   (BatchNorm) provides ``train_apply`` for this pass and ``apply`` for everything else;
3. ``chain(gradient parts…, optimizer, update parts…)`` with the extra arguments key=k and
   step=t (the global step, e.g. for a step-size schedule);
4. for a network with running statistics (``with_stats``): the statistics computed by the
   training pass replace whatever the update did to them (they are never learned);
5. the unit rules, in the method's order, on the step's activations (taken before the
   update) and the updated parameters.

The error reported for the step is that of the prediction made before the update
(online error).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lopkit._seeds import any_seed
from lopkit.methods import Composed
from lopkit.nets._base import Network

# fold_in tags: each consumer of a step's key derives its own stream from it.
_DROPOUT, _RULE, _BOUNDARY = 0xD0, 0x100, 0xB0


@dataclasses.dataclass(frozen=True, eq=False)
class Learner:
    """A network, a loss, and a composed method, as pure per-seed functions.

    loss_fn(out, y) -> scalar mean loss; error_fn(out, y) -> scalar reported error;
    tx: the composed update; optimizer: the benchmark's optimizer without the remedies.
    """

    net: Network
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array]
    error_fn: Callable[[jax.Array, jax.Array], jax.Array]
    method: Composed
    tx: optax.GradientTransformationExtraArgs
    optimizer: optax.GradientTransformation  # the benchmark's optimizer alone (for probes)
    protocol_events: tuple[Any, ...] = ()  # the benchmark's own task-start events

    @property
    def boundary_events(self) -> tuple[Any, ...]:
        """The benchmark's task-start events, then the method's, in order."""
        return self.protocol_events + self.method.boundary_events

    def init(self, key: jax.Array) -> dict[str, Any]:
        params = self.net.init(key)
        return {
            "params": params,
            "opt_state": self.tx.init(params),
            "rules": [rule.init(params) for rule in self.method.unit_rules],
        }

    def _boundary(self, state: dict[str, Any], key: jax.Array) -> dict[str, Any]:
        params, opt_state = state["params"], state["opt_state"]
        for i, event in enumerate(self.boundary_events):
            params, opt_state = event.apply(params, opt_state, jax.random.fold_in(key, i))
        return {**state, "params": params, "opt_state": opt_state}

    def step(
        self,
        state: dict[str, Any],
        x: jax.Array,
        y: jax.Array,
        boundary: jax.Array,
        key: jax.Array,
        t: jax.Array,
    ) -> tuple[dict[str, Any], jax.Array, jax.Array]:
        """One update. Returns (state, error, loss) with error/loss of the pre-update prediction."""
        if self.boundary_events:
            # Runs only on steps where some seed starts a task; identity for the others.
            def events(s):
                new = self._boundary(s, jax.random.fold_in(key, _BOUNDARY))
                return jax.tree_util.tree_map(lambda a, b: jnp.where(boundary, a, b), new, s)

            state = jax.lax.cond(any_seed(boundary), events, lambda s: s, state)
        params = state["params"]
        dropout_key = jax.random.fold_in(key, _DROPOUT) if self.net.config.dropout > 0 else None

        forward = self.net.train_apply

        def objective(p):
            out, trace = forward(p, x, dropout_key)
            return self.loss_fn(out, y), (out, trace)

        (loss, (out, trace)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = self.tx.update(grads, state["opt_state"], params, key=key, step=t)
        params = optax.apply_updates(params, updates)
        if self.net.has_stats:  # running statistics: computed, never learned
            params = self.net.with_stats(params, trace)
        rule_states = []
        for i, (rule, rule_state) in enumerate(
            zip(self.method.unit_rules, state["rules"], strict=True)
        ):
            rule_key = jax.random.fold_in(key, _RULE + i)
            rule_state, params, opt_state = rule.apply(
                rule_state, params, opt_state, trace, rule_key, t
            )
            rule_states.append(rule_state)
        error = self.error_fn(jax.lax.stop_gradient(out), y)
        return {"params": params, "opt_state": opt_state, "rules": rule_states}, error, loss


def squared_error(out: jax.Array, y: jax.Array) -> jax.Array:
    """mean (ŷ − y)² — the official code's MSE loss, no ½ (docs/design.md §12)."""
    return jnp.mean((out - y) ** 2)
