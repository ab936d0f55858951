"""What a remedy is, and the one rule by which remedies compose.

A remedy contributes some of six *parts*:

1. ``architecture``: a change to the network config (LayerNorm, CReLU, dropout).
2. ``optimizer``: a change to the optimizer config (e.g. Adam with β1 = β2).
3. ``gradient``: an optax transformation of the raw gradient, before the optimizer
   (coupled L2, L2-Init: they add a term to the gradient).
4. ``update``: an optax transformation of the optimizer's update, after the step size
   (decoupled weight decay, shrink-and-perturb noise, UPGD's gating).
5. ``unit_rule``: run after each update on one seed's params, optimizer state and the
   step's activations (continual backprop, ReDo, SNR, weight clipping).
6. ``boundary``: run at the first step of each new task, before that step's update
   (shrink-and-perturb at boundaries, head reset, full reset).

Composition rule for ``a+b+c``: architecture and optimizer changes apply in the listed
order and two remedies may not set the same field (a conflict is an error);
the update is ``chain(gradient parts…, optimizer, update parts…)`` with parts in the
listed order; unit rules run in the listed order after the update; boundary events run in
the listed order. Transformations receive the step's PRNG key as the extra argument
``key`` (optax extra-args), so noise is fresh every step and independent per seed.
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
      the update), ``step`` the global step (int scalar).
    """

    init: Callable[[Params], Any]
    apply: Callable[..., tuple[Any, Params, Any]]


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


@dataclasses.dataclass(frozen=True)
class Parts:
    architecture: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    gradient: optax.GradientTransformation | None = None
    update: optax.GradientTransformation | None = None
    unit_rule: UnitRule | None = None
    boundary: BoundaryEvent | None = None


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
