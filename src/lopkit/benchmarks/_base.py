"""What a benchmark provides to the engine: a stream, a network, a loss, an optimizer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import optax

from lopkit._config import field, static_zero
from lopkit._errors import ConfigError
from lopkit.streams._base import Stream


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """SGD (optionally with momentum) or Adam; PyTorch's conventions (Adam ε added to √v̂)."""

    optimizer: str = field("sgd", "sgd or adam", choices=("sgd", "adam"))
    lr: float = field(0.01, "step size α", positive=True, axis=True)
    momentum: float = field(0.0, "SGD momentum", open_unit=True, axis=True)
    beta1: float = field(0.9, "Adam β1", open_unit=True, axis=True)
    beta2: float = field(0.999, "Adam β2", open_unit=True, axis=True)
    eps: float = field(1e-8, "Adam ε", positive=True, axis=True)


def make_optimizer(c: dict[str, Any]) -> optax.GradientTransformation:
    """The optimizer for a dict with the fields of :class:`OptimizerConfig`."""
    if c["optimizer"] == "sgd":
        momentum = None if static_zero(c["momentum"]) else c["momentum"]
        return optax.sgd(c["lr"], momentum=momentum)
    if c["optimizer"] == "adam":
        return optax.adam(c["lr"], b1=c["beta1"], b2=c["beta2"], eps=c["eps"])
    raise ConfigError(f"unknown optimizer {c['optimizer']!r}; valid: sgd, adam")


OPTIMIZER_FIELDS = tuple(f.name for f in dataclasses.fields(OptimizerConfig))


def optimizer_settings(config: Any) -> dict[str, Any]:
    """The :class:`OptimizerConfig` fields of a benchmark's config, as the optimizer dict
    (:attr:`Problem.optimizer`) that :func:`make_optimizer` and the remedies read."""
    return {k: getattr(config, k) for k in OPTIMIZER_FIELDS}


@dataclasses.dataclass(frozen=True)
class Problem:
    """A benchmark instantiated from its config.

    stream: a :class:`lopkit.streams.Stream`; network: the network config as a dict (remedies
    may change it) and ``make_network(dict) -> net``; loss_fn / error_fn: (out, y) -> scalar;
    error_name: the reported error's metric name; optimizer: dict of OptimizerConfig fields;
    boundary_events: :class:`lopkit.methods.BoundaryEvent` s that are part of the protocol
    (e.g. continual ImageNet resets the output layer at each task), run before the
    remedies' events; seed_map: how seeds are mapped ("vmap", "map" or "split",
    :class:`lopkit.engine.Program`);
    optimizer_fn: builds the base optimizer from the optimizer dict (default
    :func:`make_optimizer`; e.g. a step-size schedule over the tasks); protocol: the
    benchmark's own procedure around the updates (e.g. keeping the best-validation weights),
    ``init(params) -> state`` and ``after_step(state, learner_state, stream, stream_state,
    step) -> (state, learner_state)``, run after every update, and optionally
    ``check(method)``, which raises ConfigError for a composed method it cannot serve.
    """

    stream: Stream
    network: dict[str, Any]
    make_network: Callable[[dict[str, Any]], Any]
    loss_fn: Callable
    error_fn: Callable
    error_name: str
    optimizer: dict[str, Any]
    boundary_events: tuple[Any, ...] = ()  # the protocol's own task-start events (head reset)
    seed_map: str = "vmap"  # "vmap", "map" (sequential over seeds; faster for some conv nets)
    # or "split" (batched stream, updates one run at a time: exact for the RL agents)
    optimizer_fn: Callable[[dict[str, Any]], optax.GradientTransformation] | None = None
    protocol: Any = None


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: name, summary, typed config, build, remedy defaults.

    run_defaults: run settings (bin_size, steps, …) suggested by the benchmark, as a dict or
    as a function of the benchmark's config (e.g. one bin per task when the task length is
    a setting); the user's settings override them.
    method_defaults: remedy defaults that hold when a method has several remedies together,
    keyed by those remedies joined with ``+`` (e.g. ``"cbp+l2": {"l2": {...}}``: the
    official PPO CBP config decays weights less than its L2 config); they override
    ``remedy_defaults`` whenever every named remedy is in the method.
    setting_defaults: defaults of benchmark settings that depend on the settings given
    (``settings -> {name: value}``; e.g. the minatar benchmark's PPO agent has its own
    optimizer settings); the user's settings override them.
    """

    name: str
    summary: str
    source: str
    config: type
    build: Callable[[Any], Problem]
    remedy_defaults: dict[str, dict[str, Any]]
    run_defaults: dict[str, Any] | Callable[[Any], dict[str, Any]]
    method_defaults: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    setting_defaults: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def remedy_defaults_for(self, names: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The benchmark's remedy defaults for a method of remedies ``names``."""
        out = {n: dict(v) for n, v in self.remedy_defaults.items()}
        for combination, values in self.method_defaults.items():
            if set(combination.split("+")) <= set(names):
                for remedy, settings in values.items():
                    out[remedy] = {**out.get(remedy, {}), **settings}
        return out

    def run_defaults_for(self, config: Any) -> dict[str, Any]:
        """The suggested run settings for ``config`` (an instance of ``self.config``)."""
        d = self.run_defaults
        return dict(d(config) if callable(d) else d)
