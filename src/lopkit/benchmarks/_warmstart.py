"""Warm-starting and transient non-stationarity as a benchmark (docs/design.md §12).

N1 steps of modified data (a subset, a growing subset, noisy or wrong labels, blurred
inputs), then N2 steps of the clean training set; ``variant=none`` is the fresh-start
baseline, trained on the clean set for the same N1 + N2 steps. An MLP with minibatch SGD
(batch 64) on 8×8 digits by default (Fashion-MNIST and MNIST with ``data=``).

Reported: ``accuracy`` — the online training accuracy per bin (on the labels the step
draws, before its update; in phase 1 these are the modified data); ``test_accuracy`` —
the clean test split at every bin's end. The studies' quantity is the final train and
test accuracy against the baseline's (:mod:`lopkit.experiments.warmstart`).

References:
  Ash, Adams. On warm-starting neural network training. NeurIPS 2020.
  Igl, Farquhar, Luketina, Boehmer, Whiteson. Transient non-stationarity and
  generalisation in deep reinforcement learning. ICLR 2021.
  Achille, Rovere, Soatto. Critical learning periods in deep networks. ICLR 2019.
"""

from __future__ import annotations

import dataclasses
import math

from lopkit._config import field, to_dict
from lopkit.benchmarks._base import Benchmark, OptimizerConfig, Problem
from lopkit.benchmarks._classification import mlp_classifier
from lopkit.nets import ACTIVATIONS
from lopkit.streams._warmstart import WarmstartData, WarmstartStreamConfig

BINS = 20  # the default bin size splits the run into at least this many bins


@dataclasses.dataclass(frozen=True)
class WarmstartConfig(WarmstartStreamConfig, OptimizerConfig):
    """Two-phase training (Ash & Adams 2020; Igl et al. 2021): data, schedule, learner."""

    phase2_steps: int = field(2_000, "N2: steps of the second (clean) phase", positive=True)
    hidden: tuple[int, ...] = field((256, 256), "hidden widths", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))


def build(c: WarmstartConfig) -> Problem:
    d = to_dict(c)
    stream_fields = {f.name for f in dataclasses.fields(WarmstartStreamConfig)}
    stream = WarmstartData(WarmstartStreamConfig(**{k: d[k] for k in stream_fields}))
    return mlp_classifier(stream, c)


def default_bin_size(phase1: int, phase2: int, bins: int = BINS) -> int:
    """The largest divisor of gcd(N1, N2) that gives at least ``bins`` bins (so the phase
    switch falls on a bin edge)."""
    g = math.gcd(phase1, phase2)
    limit = max(1, (phase1 + phase2) // bins)
    return max(d for d in range(1, min(g, limit) + 1) if g % d == 0)


def run_defaults(c: WarmstartConfig) -> dict:
    """N1 + N2 steps; test accuracy, dead units and weight magnitude at every bin's end
    (add ``effective_rank`` with ``--metrics``: its SVDs cost more than the training here)."""
    bin_size = default_bin_size(c.phase1_steps, c.phase2_steps)
    return {
        "steps": c.phase1_steps + c.phase2_steps,
        "bin_size": bin_size,
        "metrics_every": bin_size,
        "probe_size": 1_000,
        "metrics": ("test_accuracy", "dead_fraction", "weight_magnitude"),
    }


WARMSTART = Benchmark(
    name="warmstart",
    summary="warm-starting / transient non-stationarity: N1 steps of modified data "
    "(fraction, growing, noisy/wrong labels, blur), then N2 clean; 'none' = fresh start",
    source="Ash & Adams 2020; Igl et al. 2021; Achille et al. 2017",
    config=WarmstartConfig,
    build=build,
    # Remedies keep their own defaults here (shrink_perturb_boundary fires at the switch
    # to phase 2: Ash & Adams' warm-start remedy).
    remedy_defaults={},
    run_defaults=run_defaults,
)
