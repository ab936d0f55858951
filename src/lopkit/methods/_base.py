"""What a remedy is, and the one rule by which remedies compose.

A remedy contributes some of ten *parts*:

1. ``architecture``: a change to the network config (LayerNorm, CReLU, dropout).
2. ``optimizer``: a change to the optimizer config (e.g. Adam with β1 = β2).
3. ``gradient``: an optax transformation of the raw gradient, before the optimizer
   (coupled L2, L2-Init: they add a term to the gradient).
4. ``update``: an optax transformation of the optimizer's update, after the step size
   (decoupled weight decay, shrink-and-perturb noise, UPGD's gating).
5. ``unit_rule``: run after each update on one seed's params, optimizer state and the
   step's activations (continual backprop, ReDo, SNR, weight clipping); a rule that
   declares ``with_grads`` also receives the step's gradient (ReGraMa).
6. ``boundary``: run at the first step of each new task, before that step's update
   (shrink-and-perturb at boundaries, head reset, full reset).
7. ``objective``: a term added to the loss that is differentiated (C-CHAIN's churn
   penalty): it sees the params, its own state (e.g. the previous step's params, a
   reference batch) and the step's batch, and its state is updated after each step.
8. ``gradient_fn``: a wrapper of the gradient computation itself (SAM: the gradient at a
   perturbed point); it receives the value-and-gradient function of the whole objective.
9. ``evaluation``: which parameters *predict* (hare & tortoise: the slow network): a
   function of the remedy's unit-rule state and the params; the reported online error,
   the probes and an agent's actions use them, training uses the params.
10. ``network``: a wrapper of the network built from the (merged) architecture, which
   adds parameters and changes the forward pass while keeping the network's layers, unit
   layers and names (plasticity injection's pre-allocated heads).

Composition rule for ``a+b+c``: architecture and optimizer changes apply in the listed
order and two remedies may not set the same field (a conflict is an error);
the loss is the benchmark's loss plus the objective terms (listed order); its gradient is
taken by the one ``gradient_fn`` (at most one remedy may wrap the gradient computation:
two are an error) or by plain differentiation; the update is
``chain(gradient parts…, optimizer, update parts…)`` with parts in the listed order; unit
rules run in the listed order after the update, then the objectives' states are updated;
boundary events run in the listed order; at most one remedy may give the evaluation
params (two are an error); at most one remedy may wrap the network (two are an error),
and every remedy is then built with the wrapped network. Transformations receive the
step's PRNG key as the extra argument ``key`` (optax extra-args), so noise is fresh every
step and independent per seed, the global step ``step``, and the step's raw gradient
``grads`` (TRAC).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from lopkit.nets._base import Network

Params = dict[str, Any]


class UnitRule(NamedTuple):
    """A rule applied after every update, written for one seed.

    init(params) -> state
    apply(state, params, opt_state, trace, key, step) -> (state, params, opt_state)
      ``trace`` is the network's :class:`lopkit.nets.Trace` of the step's batch (taken before
      the update), ``step`` the global step (int scalar). With ``with_grads``, also the
      keyword ``grads``: the gradient the step's update was made from (a params tree).
    """

    init: Callable[[Params], Any]
    apply: Callable[..., tuple[Any, Params, Any]]
    with_grads: bool = False  # apply(..., grads=g): also the step's gradient (a params tree)


def layer_by_layer(layers: tuple[Any, ...], layer_step: Callable[..., tuple]) -> Callable:
    """A :attr:`UnitRule.apply` that runs a rule on each unit layer in turn.

    ``layer_step(i, layer, state_i, params, opt_state, h_i, key, step) -> (state_i, params,
    opt_state)``, with ``h_i`` the layer's activations on the step's batch; the rule's
    state is the list of the layers' states. ``key`` is the rule's key for the step
    (derive per-layer streams with ``fold_in(key, i)``)."""

    def apply(state, params, opt_state, trace, key, step):
        new_state = []
        for i, (layer, st, h) in enumerate(zip(layers, state, trace.hidden, strict=True)):
            st, params, opt_state = layer_step(i, layer, st, params, opt_state, h, key, step)
            new_state.append(st)
        return new_state, params, opt_state

    return apply


class BoundaryEvent(NamedTuple):
    """An event at the first step of every new task: (params, opt_state, key) -> same."""

    apply: Callable[[Params, Any, jax.Array], tuple[Params, Any]]


class Objective(NamedTuple):
    """A term added to the loss, written for one seed.

    init(params) -> state
    term(state, params, x, y, key, step) -> (value, aux): the scalar added to the loss at
      ``params`` (differentiated with it: wrap what must not be in ``stop_gradient``);
      ``aux`` is anything the update needs.
    update(state, params, x, y, loss, aux, step) -> state: after the step's update and unit
      rules, with ``params`` the parameters the step's gradient was taken at, ``loss`` the
      benchmark's loss there (a scalar) and ``aux`` the term's aux from that evaluation.
    """

    init: Callable[[Params], Any]
    term: Callable[..., tuple[jax.Array, Any]]
    update: Callable[..., Any]


# ``gradient_fn(value_and_grad, params, key) -> ((value, aux), grads)``, with
# ``value_and_grad(params) -> ((value, aux), grads)`` the plain differentiation of the whole
# loss (benchmark loss + objective terms); the returned value and aux must be those at
# ``params`` (they are the step's reported loss and the activations the unit rules see).
GradientFn = Callable[[Callable[[Params], Any], Params, jax.Array], Any]

# ``evaluation(rule_state, params) -> params``: the parameters that predict, from the
# remedy's own unit-rule state (its ``unit_rule`` is required) and the trained params.
Evaluation = Callable[[Any, Params], Params]


@dataclasses.dataclass(frozen=True)
class Parts:
    architecture: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    gradient: optax.GradientTransformation | None = None
    update: optax.GradientTransformation | None = None
    unit_rule: UnitRule | None = None
    boundary: BoundaryEvent | None = None
    objective: Objective | None = None
    gradient_fn: GradientFn | None = None
    evaluation: Evaluation | None = None
    network: Callable[[Network], Network] | None = None


class Context(NamedTuple):
    """What a remedy may look at when it builds its parts.

    net: the network (``unit_layers``, ``init_layer``, ``names``, ``output_layer``).
    learning_rate: the optimizer's step size α (a traced scalar when it is swept).
    ceiling: the remedy's own config with every swept setting at the largest value it takes
    in the program (concrete numbers; None when none of its settings is swept). The config
    a remedy builds from then holds traced scalars; what must be static (a shape, such as
    how many units one step may replace) is sized from the ceiling.
    """

    net: Network
    learning_rate: float
    ceiling: Any = None


@dataclasses.dataclass(frozen=True)
class Remedy:
    """A named remedy: its typed config, source, and how it builds its parts."""

    name: str
    summary: str
    source: str
    config: type
    build: Callable[[Any, Context], Parts]
    parts: tuple[str, ...]  # which parts it contributes, for `lopkit list`


@dataclasses.dataclass(frozen=True)
class EmptyConfig:
    """No hyper-parameters."""
