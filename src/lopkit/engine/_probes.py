"""Diagnostics recorded during a run: which metric functions, on what, and under what names.

The metric functions themselves live in :mod:`lopkit.metrics` (plain functions on arrays);
this module only says how a run feeds them: the activations of the fixed probe batch,
per hidden layer (``layer = "hidden_i"``), plus one whole-network row (``layer = ""``)
where that is meaningful — unit fractions pooled over all hidden units, weight magnitude
over all weights, ranks of the representation (the last hidden layer's features).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

from lopkit import metrics
from lopkit._config import unknown_name


class ProbeInputs(NamedTuple):
    """One seed's state as the probes see it (no seed axis).

    params: the network's parameters; pre / hidden: per hidden layer ``[batch, units]`` /
    ``[batch, features]`` on the probe batch ``x``; layers: hidden layer names.
    """

    params: Any
    pre: list[Any]
    hidden: list[Any]
    x: Any
    layers: tuple[str, ...]


class Probe(NamedTuple):
    name: str
    aliases: tuple[str, ...]
    summary: str
    fn: Callable[[ProbeInputs], list[tuple[str, Any]]]


def _pooled_units(f: Callable[[Any], Any]) -> Callable[[ProbeInputs], list[tuple[str, Any]]]:
    def rows(p: ProbeInputs) -> list[tuple[str, Any]]:
        per_layer = [(name, f(h)) for name, h in zip(p.layers, p.hidden, strict=True)]
        pooled = f(jnp.concatenate([metrics.as_units(h) for h in p.hidden], axis=-1))
        return per_layer + [("", pooled)]

    return rows


def _per_layer_rank(f: Callable[[Any], Any]) -> Callable[[ProbeInputs], list[tuple[str, Any]]]:
    def rows(p: ProbeInputs) -> list[tuple[str, Any]]:
        values = [
            (name, f(metrics.as_units(h))) for name, h in zip(p.layers, p.hidden, strict=True)
        ]
        return values + [("", values[-1][1])]

    return rows


def _weights(p: ProbeInputs) -> list[tuple[str, Any]]:
    per = metrics.weight_magnitude_per_layer(p.params)  # keys "layer/w"
    return [(k.split("/")[0], v) for k, v in per.items()] + [
        ("", metrics.weight_magnitude(p.params))
    ]


PROBES: dict[str, Probe] = {}


def _add(name: str, aliases: tuple[str, ...], summary: str, fn: Callable) -> None:
    PROBES[name] = Probe(name, aliases, summary, fn)


_add(
    "dead_fraction",
    ("dead",),
    "units with h = 0 on every probe input (Dohare 2024)",
    _pooled_units(metrics.dead_fraction),
)
_add(
    "effective_rank",
    ("erank",),
    "exp(entropy of normalized singular values) (Roy & Vetterli 2007)",
    _per_layer_rank(metrics.effective_rank),
)
_add(
    "weight_magnitude", ("weights", "wmag"), "mean |w| over weight matrices (Dohare 2024)", _weights
)

DEFAULT_PROBES = ("dead_fraction", "effective_rank", "weight_magnitude")


def resolve(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Canonical probe names for names or aliases; unknown names are errors."""
    lookup = {alias: p.name for p in PROBES.values() for alias in (p.name, *p.aliases)}
    out = []
    for n in names:
        if n not in lookup:
            raise unknown_name("metric", n, lookup)
        if lookup[n] not in out:
            out.append(lookup[n])
    return tuple(out)


def evaluate(names: tuple[str, ...], inputs: ProbeInputs) -> tuple[list[tuple[str, str]], Any]:
    """Run the named probes: (row labels [(metric, layer)], values ``[rows]`` float32)."""
    labels, values = [], []
    for n in names:
        for layer, value in PROBES[n].fn(inputs):
            labels.append((n, layer))
            values.append(jnp.asarray(value, jnp.float32))
    return labels, jnp.stack(values)
