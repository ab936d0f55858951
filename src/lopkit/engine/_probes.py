"""Diagnostics recorded during a run: which metric functions, on what, under what names.

The metric functions live in :mod:`lopkit.metrics` (plain functions on arrays, documented
in ``docs/metrics.md``); this module says how a run feeds them. Every probe sees one seed's
state at the end of a bin and the probe batch of the current task, and returns rows
``(metric, layer, value)``:

* per hidden layer (``layer = "hidden_i"``) for unit and rank metrics, plus one
  whole-network row (``layer = ""``): unit fractions pooled over all hidden units; ranks of
  the representation (the last hidden layer's features);
* per weight layer plus the whole network for weight magnitude;
* whole network only for norms, the NTK, sharpness, Adam moments and the plasticity probe.

A learner without hidden layers (``--set hidden=``, the linear baseline) has no units and
no representation: the unit and rank probes (dead, dormant, inactive, linear and saturated
fractions, every rank) record no rows for it, so they are absent from its metrics table
(never NaN or 0), while the weight probes and the whole-network probes are recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lopkit import metrics
from lopkit._config import unknown_name
from lopkit._errors import ConfigError

NTK_SIZE = 16  # examples of the probe batch used for the empirical NTK
SHARPNESS_ITERS = 20
PLASTICITY_STEPS = 100  # steps of the plasticity probe on a fresh task


class ProbeInputs(NamedTuple):
    """One seed's state as the probes see it (no seed axis).

    params / params0: current and initial parameters (params0 None unless a probe needs
    it); opt_state: the optimizer state; pre / hidden: per hidden layer ``[batch, units]`` /
    ``[batch, features]`` on the probe batch ``x`` with targets ``y``; layers: hidden layer
    names; learner: the :class:`lopkit.engine._learner.Learner`; stream / stream_state: to
    draw a fresh task; key: a PRNG key for this snapshot.
    """

    params: Any
    params0: Any
    opt_state: Any
    pre: list[Any]
    hidden: list[Any]
    x: Any
    y: Any
    layers: tuple[str, ...]
    learner: Any
    stream: Any
    stream_state: Any
    key: Any


Rows = list[tuple[str, str, Any]]


class Probe(NamedTuple):
    name: str
    aliases: tuple[str, ...]
    summary: str
    fn: Callable[[ProbeInputs], Rows]
    needs_params0: bool = False
    check: Callable[[Any], str | None] | None = None  # learner -> error message or None
    stream_check: Callable[[Any], str | None] | None = None  # stream -> error message or None
    on_hidden: bool = False  # computed on hidden layers: no rows for a linear learner


def _pooled_units(name: str, f: Callable[[Any], Any], source: str = "hidden"):
    """Per layer, and pooled over all hidden units: the fraction over the concatenated units
    when every layer has the same rows (an MLP), else (conv layers, whose rows are
    batch × height × width) the unit-weighted mean of the per-layer fractions."""

    def rows(p: ProbeInputs) -> Rows:
        if not p.layers:  # a linear learner (hidden=): no units, so no rows
            return []
        acts = [metrics.as_units(h) for h in getattr(p, source)]
        out = [(name, layer, f(h)) for layer, h in zip(p.layers, acts, strict=True)]
        if len({h.shape[0] for h in acts}) == 1:
            pooled = f(jnp.concatenate(acts, axis=-1))
        else:
            units = jnp.array([h.shape[-1] for h in acts], jnp.float32)
            pooled = jnp.sum(jnp.stack([v for _, _, v in out]) * units) / jnp.sum(units)
        return out + [(name, "", pooled)]

    return rows


def _per_layer_rank(name: str, f: Callable[[Any], Any]):
    def rows(p: ProbeInputs) -> Rows:
        if not p.layers:  # a linear learner (hidden=): no representation, so no rows
            return []
        out = [
            (name, layer, f(metrics.as_units(h)))
            for layer, h in zip(p.layers, p.hidden, strict=True)
        ]
        return out + [(name, "", out[-1][2])]

    return rows


def _loss(p: ProbeInputs) -> Callable[[Any, Any], Any]:
    net, loss_fn = p.learner.net, p.learner.loss_fn
    return lambda params, batch: loss_fn(net.apply(params, batch[0])[0], batch[1])


def _weights(p: ProbeInputs) -> Rows:
    per = metrics.weight_magnitude_per_layer(p.params)  # keys "layer/w"
    rows = [("weight_magnitude", k.rsplit("/", 1)[0], v) for k, v in per.items()]
    return rows + [("weight_magnitude", "", metrics.weight_magnitude(p.params))]


def _grad_norm(p: ProbeInputs) -> Rows:
    grads = jax.grad(_loss(p))(p.params, (p.x, p.y))
    return [("grad_norm", "", metrics.grad_norm(grads))]


def _ntk(p: ProbeInputs) -> Rows:
    x = p.x[:NTK_SIZE]
    gram = metrics.ntk_gram(lambda params, xs: p.learner.net.apply(params, xs)[0], p.params, x)
    return [(k, "", v) for k, v in metrics.ntk_summary(gram).items()]


def _sharpness(p: ProbeInputs) -> Rows:
    value = metrics.sharpness(_loss(p), p.params, (p.x, p.y), p.key, iters=SHARPNESS_ITERS)
    return [("sharpness", "", value)]


def _adam(p: ProbeInputs) -> Rows:
    return [(k, "", v) for k, v in metrics.adam_moment_norms(p.opt_state).items()]


def _plasticity(p: ProbeInputs) -> Rows:
    """1 − loss_after/loss_before after PLASTICITY_STEPS steps on a fresh task (a new
    problem of the same stream: new target / permutation / classes), from a copy of the
    current network with a fresh state of the benchmark's optimizer."""
    k_task, k_block, k_eval = jax.random.split(p.key, 3)
    task = p.stream.init(k_task)
    task, block = p.stream.block(task, k_block, jnp.zeros((), jnp.int32), PLASTICITY_STEPS)
    eval_batch = p.stream.probe(task, k_eval, p.x.shape[0])
    value = metrics.plasticity_probe(
        _loss(p), p.params, p.learner.optimizer, (block.x, block.y), eval_batch
    )
    return [("plasticity_probe", "", value)]


def _test_accuracy(p: ProbeInputs) -> Rows:
    """Accuracy on the current task's held-out set, ``stream.evaluate(state) -> (x, labels)``.

    Examples labelled −1 are padding (ignored); a stream with ``output_mask(state)`` (bool
    ``[outputs]``) restricts predictions to those outputs (class-incremental learning)."""
    x, labels = p.stream.evaluate(p.stream_state)
    out = p.learner.net.apply(p.params, x)[0]
    if p.stream.masks_outputs:
        out = jnp.where(p.stream.output_mask(p.stream_state), out, -jnp.inf)
    valid = labels >= 0
    correct = (jnp.argmax(out, -1) == labels) & valid
    return [("test_accuracy", "", jnp.sum(correct) / jnp.maximum(jnp.sum(valid), 1))]


def _needs_test_set(stream: Any) -> str | None:
    if not stream.has_test_set:
        return "metric test_accuracy needs a benchmark with a held-out test set"
    return None


def _needs_targets(name: str):
    def check(stream: Any) -> str | None:
        if not stream.probe_targets:
            return (
                f"metric {name} needs probe inputs with targets (a supervised benchmark); "
                "this benchmark's probe batch is observations only"
            )
        return None

    return check


def _needs_adam(learner: Any) -> str | None:
    params = jax.eval_shape(learner.net.init, jax.random.PRNGKey(0))
    try:
        jax.eval_shape(lambda p: metrics.adam_moment_norms(learner.tx.init(p)), params)
    except ValueError:
        return "metric adam_state needs an Adam optimizer (--set optimizer=adam)"
    return None


def _needs_saturating(learner: Any) -> str | None:
    act = learner.net.config.activation
    if act not in metrics.SATURATION_THRESHOLDS:
        valid = ", ".join(metrics.SATURATION_THRESHOLDS)
        return f"metric saturated_fraction needs a saturating activation ({valid}), not {act!r}"
    return None


def _saturated(p: ProbeInputs) -> Rows:
    act = p.learner.net.config.activation
    return _pooled_units("saturated_fraction", lambda h: metrics.saturated_fraction(h, act))(p)


PROBES: dict[str, Probe] = {}


def _add(name, aliases, summary, fn, **extra) -> None:
    PROBES[name] = Probe(name, aliases, summary, fn, **extra)


def _unit(name, aliases, summary, fn, **extra) -> None:
    """A probe computed on the hidden layers (units or the representation)."""
    _add(name, aliases, summary, fn, on_hidden=True, **extra)


# fmt: off
_unit("dead_fraction", ("dead",), "units with h = 0 on every probe input (Dohare 2024)",
      _pooled_units("dead_fraction", metrics.dead_fraction))
_unit("dormant_fraction", ("dormant",), "units with E|h_i| / mean_k E|h_k| ≤ 0.1 (Sokar 2023, ReDo)",
      _pooled_units("dormant_fraction", metrics.dormant_fraction))
_unit("dormant_fraction_0025", ("dormant_0025",), "dormant_fraction at τ = 0.025 (Sokar 2023's dormancy plots)",
      _pooled_units("dormant_fraction_0025", lambda h: metrics.dormant_fraction(h, 0.025)))
_unit("inactive_fraction", ("inactive",), "units nonzero on < 1% of probe inputs (Dohare 2024, CIFAR)",
      _pooled_units("inactive_fraction", metrics.inactive_fraction))
_unit("linear_fraction", ("linearized", "linear"), "units with pre-activation > 0 on every input (Lyle 2024)",
      _pooled_units("linear_fraction", metrics.linear_fraction, source="pre"))
_unit("saturated_fraction", ("saturated",), "tanh |h| > 0.99 / sigmoid h ∉ [0.01, 0.99] on every input",
      _saturated, check=_needs_saturating)
_unit("effective_rank", ("erank",), "exp(entropy of normalized singular values) (Roy & Vetterli 2007)",
      _per_layer_rank("effective_rank", metrics.effective_rank))
_unit("srank", ("stable_rank",), "smallest k with Σσ_≤k / Σσ ≥ 0.99 (Kumar 2021; the paper's stable rank)",
      _per_layer_rank("srank", metrics.srank))
_unit("srank_fraction", (), "srank / the layer's width (Dohare 2024 RL: stable rank in % of 256)",
      _per_layer_rank("srank_fraction", lambda h: metrics.srank(h) / h.shape[-1]))
_unit("approximate_rank", ("arank",), "srank with σ² (99% of variance; Dohare 2024 code)",
      _per_layer_rank("approximate_rank", metrics.approximate_rank))
_unit("feature_rank", ("frank",), "#{σ_i(Φ/√n) > 0.01} (Lyle 2022)",
      _per_layer_rank("feature_rank", metrics.feature_rank))
_unit("stable_rank_classic", ("classic_rank",), "‖Φ‖_F² / σ_1² (Rudelson & Vershynin)",
      _per_layer_rank("stable_rank_classic", metrics.stable_rank_classic))
_add("weight_magnitude", ("weights", "wmag"), "mean |w| over weight matrices, per layer and all (Dohare 2024)",
     _weights)
_add("param_norm", (), "‖θ‖₂ (Lyle 2024)", lambda p: [("param_norm", "", metrics.param_norm(p.params))])
_add("distance_from_init", ("distance",), "‖θ − θ₀‖₂ (Kumar 2024)",
     lambda p: [("distance_from_init", "", metrics.distance_from_init(p.params, p.params0))],
     needs_params0=True)
_add("grad_norm", (), "‖∇θ L‖₂ on the probe batch (Plasticine)", _grad_norm,
     stream_check=_needs_targets("grad_norm"))
_add("ntk", (), f"empirical NTK on {NTK_SIZE} probe inputs: rank, condition, off-diagonal ratio (Lyle 2024)",
     _ntk, stream_check=_needs_targets("ntk"))
_add("sharpness", (), "top Hessian eigenvalue of the probe loss, power iteration (Lyle 2024)", _sharpness,
     stream_check=_needs_targets("sharpness"))
_add("adam_state", ("adam",), "‖m‖₂ and ‖v‖₂ of Adam's moments (Lyle 2023)", _adam, check=_needs_adam)
_add("plasticity_probe", ("plasticity",),
     f"1 − loss_after/loss_before after {PLASTICITY_STEPS} steps on a fresh task (Lyle 2022)", _plasticity,
     stream_check=_needs_targets("plasticity_probe"))
_add("test_accuracy", ("test",), "accuracy on the current task's held-out test examples",
     _test_accuracy, stream_check=_needs_test_set)
# fmt: on

DEFAULT_PROBES = ("dead_fraction", "effective_rank", "weight_magnitude")


def absent_without_hidden(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The probes of ``names`` that record nothing for a learner without hidden layers."""
    return tuple(n for n in resolve(names) if PROBES[n].on_hidden)


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


def check(names: tuple[str, ...], learner: Any, stream: Any) -> None:
    """Refuse probes that cannot apply (Adam moments under SGD, no test set, …)."""
    for n in names:
        probe = PROBES[n]
        for test, arg in ((probe.check, learner), (probe.stream_check, stream)):
            message = test(arg) if test else None
            if message:
                raise ConfigError(message)


def evaluate(names: tuple[str, ...], inputs: ProbeInputs) -> tuple[list[tuple[str, str]], Any]:
    """Run the named probes: (row labels [(metric, layer)], values ``[rows]`` float32)."""
    labels, values = [], []
    for n in names:
        for metric, layer, value in PROBES[n].fn(inputs):
            labels.append((metric, layer))
            values.append(jnp.asarray(value, jnp.float32))
    return labels, jnp.stack(values) if values else jnp.zeros((0,), jnp.float32)
