"""One seed's learner: state, and the update step (pure; the seed axis never appears).

The learner state is a dict pytree::

    {"params", "opt_state", "rules": [state of each unit rule],
     "objectives": [state of each objective term]}   # only when the method has one

A step, for a batch (x, y) at global step t with PRNG key k:

1. at the first step of a new task, the benchmark's own events (e.g. a head reset), then
   the method's boundary events, in order;
2. forward pass (dropout keyed by k), loss plus the method's objective terms, gradient —
   by the method's ``gradient_fn`` if it has one (SAM), else plain differentiation; a
   network with a training mode (BatchNorm) provides ``train_apply`` for this pass and
   ``apply`` for everything else;
3. ``chain(gradient parts…, optimizer, update parts…)`` with the extra arguments key=k,
   step=t (the global step, e.g. for a step-size schedule) and grads (the step's raw
   gradient, for a part after the optimizer that needs it: TRAC);
4. for a network with running statistics (``with_stats``): the statistics computed by the
   training pass replace whatever the update did to them (they are never learned);
5. the unit rules, in the method's order, on the step's activations (taken before the
   update) and the updated parameters (and the step's gradient, for a rule that asks);
6. the objective terms' states, in order.

The error reported for the step is that of the prediction made before the update
(online error), by the evaluation params (:meth:`Learner.predicting`: the params, unless
a remedy such as hare & tortoise predicts with others); the reported loss is the
benchmark's loss, without the objective terms.
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
_DROPOUT, _RULE, _BOUNDARY, _OBJECTIVE, _GRADIENT = 0xD0, 0x100, 0xB0, 0x200, 0xC0


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
        state = {
            "params": params,
            "opt_state": self.tx.init(params),
            "rules": [rule.init(params) for rule in self.method.unit_rules],
        }
        if self.method.objectives:
            state["objectives"] = [o.init(params) for o in self.method.objectives]
        return state

    def predicting(self, state: dict[str, Any]) -> Any:
        """The params that predict (online error, probes, an agent's actions): the params,
        or the method's evaluation params (docs/design.md §5)."""
        return self.method.evaluation_params(state["rules"], state["params"])

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
        objectives = self.method.objectives
        objective_states = state.get("objectives", [])

        forward = self.net.train_apply

        def objective(p):
            out, trace = forward(p, x, dropout_key)
            loss = self.loss_fn(out, y)
            total, auxes = loss, []
            for i, (term, term_state) in enumerate(zip(objectives, objective_states, strict=True)):
                value, aux = term.term(
                    term_state, p, x, y, jax.random.fold_in(key, _OBJECTIVE + i), t
                )
                total, auxes = total + value, [*auxes, aux]
            return total, (loss, out, trace, auxes)

        value_and_grad = jax.value_and_grad(objective, has_aux=True)
        if self.method.gradient_fn is None:
            (_, (loss, out, trace, auxes)), grads = value_and_grad(params)
        else:
            gradient_key = jax.random.fold_in(key, _GRADIENT)
            (_, (loss, out, trace, auxes)), grads = self.method.gradient_fn(
                value_and_grad, params, gradient_key
            )
        if self.method.has_evaluation:  # the prediction is the evaluation params'
            out = self.net.apply(self.predicting(state), x)[0]
        updates, opt_state = self.tx.update(
            grads, state["opt_state"], params, key=key, step=t, grads=grads
        )
        new_params = optax.apply_updates(params, updates)
        if self.net.has_stats:  # running statistics: computed, never learned
            new_params = self.net.with_stats(new_params, trace)
        rule_states = []
        for i, (rule, rule_state) in enumerate(
            zip(self.method.unit_rules, state["rules"], strict=True)
        ):
            rule_key = jax.random.fold_in(key, _RULE + i)
            extra = {"grads": grads} if rule.with_grads else {}
            rule_state, new_params, opt_state = rule.apply(
                rule_state, new_params, opt_state, trace, rule_key, t, **extra
            )
            rule_states.append(rule_state)
        error = self.error_fn(jax.lax.stop_gradient(out), y)
        new_state = {"params": new_params, "opt_state": opt_state, "rules": rule_states}
        if objectives:
            new_state["objectives"] = [
                term.update(term_state, params, x, y, loss, aux, t)
                for term, term_state, aux in zip(objectives, objective_states, auxes, strict=True)
            ]
        return new_state, error, loss


def squared_error(out: jax.Array, y: jax.Array) -> jax.Array:
    """mean (ŷ − y)² — the official code's MSE loss, no ½ (docs/design.md §12)."""
    return jnp.mean((out - y) ** 2)
