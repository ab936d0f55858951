"""Online permuted MNIST (and Fashion-MNIST, digits) as a benchmark.

Defaults are the paper's (Dohare et al. 2024, Methods "Online permuted MNIST"; official
code ``lop/permuted_mnist/cfg``): a 784→2000→2000→2000→10 ReLU MLP, Kaiming-uniform
weights, zero biases; one pass of 60,000 examples per task, batch 1, cross-entropy, SGD
step size 0.003 (also 0.01, 0.001; Adam 1e-4 with ``--set optimizer=adam lr=1e-4``).
Reported: online accuracy (the prediction made before each update) per bin; by default
one bin is one task, and probes are taken at every task boundary on the new task (see
:mod:`lopkit.streams._permuted`). The paper ran 800 tasks (``--preset paper``).
"""

from __future__ import annotations

import dataclasses

from lopkit._config import field, to_dict
from lopkit.benchmarks._base import Benchmark, OptimizerConfig, Problem
from lopkit.benchmarks._classification import mlp_classifier
from lopkit.nets import ACTIVATIONS
from lopkit.streams._permuted import PermutedInputs, PermutedStreamConfig

DEFAULT_TASKS = 10  # default run length in tasks; the paper's is 800 (--preset paper)


@dataclasses.dataclass(frozen=True)
class PermutedConfig(PermutedStreamConfig, OptimizerConfig):
    """Online permuted inputs (Dohare et al. 2024): data, learner and optimizer."""

    lr: float = field(0.003, "step size α (paper: SGD 0.003; Adam 1e-4)", positive=True, axis=True)
    hidden: tuple[int, ...] = field(
        (2000, 2000, 2000),
        "hidden widths (empty: a linear classifier, the linear baseline)",
        positive=True,
        may_be_empty=True,
    )
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))


def build(c: PermutedConfig) -> Problem:
    d = to_dict(c)
    stream_fields = {f.name for f in dataclasses.fields(PermutedStreamConfig)}
    stream = PermutedInputs(PermutedStreamConfig(**{k: d[k] for k in stream_fields}))
    return mlp_classifier(stream, c)


def run_defaults(c: PermutedConfig) -> dict[str, int]:
    """One bin per task, a probe snapshot at every task boundary, ten tasks."""
    steps_per_task = c.steps_per_task
    return {
        "bin_size": steps_per_task,
        "metrics_every": steps_per_task,
        "steps": DEFAULT_TASKS * steps_per_task,
        "probe_size": 2_000,
    }


PERMUTED = Benchmark(
    name="permuted",
    summary="online permuted MNIST / Fashion-MNIST / digits: a new pixel permutation per "
    "task, one pass, batch 1, online accuracy per task",
    source="Dohare et al. 2024 (Nature), Methods",
    config=PermutedConfig,
    build=build,
    # The paper's MNIST settings (official code lop/permuted_mnist/cfg): L2 λ 1e-4;
    # shrink-and-perturb wd 1e-4, σ 1e-5 (of 1e-4…1e-6); CBP with the adaptable-contribution
    # utility, m 100, η 0.99, ρ 1e-5 (of 1e-4…1e-6), the fraction carried over
    # (cfg/cbp.json: "accumulate": true; its "mt": 100 equals online_expr.py's default).
    remedy_defaults={
        "l2": {"weight_decay": 1e-4},
        "shrink_perturb": {"weight_decay": 1e-4, "noise_std": 1e-5},
        "cbp": {
            "replacement_rate": 1e-5,
            "maturity_threshold": 100,
            "decay_rate": 0.99,
            "utility": "adaptable_contribution",
            "accumulate": True,
        },
    },
    run_defaults=run_defaults,
)
