"""Streams whose labels change while the inputs stay: three benchmarks of the literature.

All three are one stream (:mod:`lopkit.streams._relabeled`) with a different relabeling
rule, and an MLP trained by SGD with cross-entropy on any labeled set lopkit reads:

* ``label_permuted`` — every ``change_every`` steps the classes are permuted (Elsayed &
  Mahmood 2024, UPGD §4.3: EMNIST balanced, batch 1, a new permutation every 2,500
  samples, a 300-150 ReLU MLP, 1M samples; official code core/task/label_permuted_emnist.py,
  core/network/fcn_relu.py, experiments/label_permuted_emnist.py). Reported: online
  accuracy per task.
* ``random_labels`` — each task a fresh uniform random labeling of a fixed ``subset``,
  trained for ``steps_per_task`` steps (Lyle et al. 2023 §3; Kumar et al. 2024, Random
  Label MNIST). Reported: online accuracy per task, and ``train_accuracy`` — the accuracy
  on the whole subset under the task's labels at the task's end, the sources' measure.
* ``changing_targets`` — the same inputs with ``targets=fixed`` (the true labels
  throughout) or ``targets=changing`` (from the true labels, then every ``change_every``
  steps the labels shuffled among the examples, or re-drawn) (Sokar et al. 2023 §3,
  Fig. 3). Reported: the dormant fraction (τ = 0.1) over training, with dead units and the
  training accuracy; the two arms are two runs of one family (the arm is a structural
  setting: ``lopkit sweep`` or one run each, then one ``lopkit plot``).

Differences from the sources (all three): Kaiming-uniform weights and zero biases
(lopkit's MLP; PyTorch's default init in UPGD's code), pixels in [0, 1] (UPGD normalizes
to [−1, 1]), and an MLP for every data set (Sokar et al. used a CNN on CIFAR-10).
"""

from __future__ import annotations

import dataclasses

from lopkit._config import field
from lopkit.benchmarks._base import Benchmark, OptimizerConfig, Problem
from lopkit.benchmarks._classification import mlp_classifier
from lopkit.nets import ACTIVATIONS
from lopkit.streams._labeled import LABELED_DATA
from lopkit.streams._relabeled import RelabeledData, RelabeledStreamConfig

DATA_DIR_HELP = "data root (default $LOPKIT_DATA, else ~/.lopkit/data)"


def _one_bin_per_task(steps_per_task: int, tasks: int, metrics: tuple[str, ...]) -> dict:
    """Run defaults: ``tasks`` tasks, a bin and a probe snapshot (1,000 examples) each."""
    return {
        "bin_size": steps_per_task,
        "metrics_every": steps_per_task,
        "steps": tasks * steps_per_task,
        "probe_size": 1_000,
        "metrics": metrics,
    }


# ---------------------------------------------------------------------------- label-permuted


@dataclasses.dataclass(frozen=True)
class LabelPermutedConfig(OptimizerConfig):
    """Label-permuted streams (Elsayed & Mahmood 2024, §4.3): data, schedule, learner."""

    data: str = field("emnist", "labeled set (UPGD: emnist, cifar10)", choices=LABELED_DATA)
    data_dir: str | None = field(None, DATA_DIR_HELP)
    change_every: int = field(2_500, "steps between label permutations (a task)", positive=True)
    batch_size: int = field(1, "examples per step (1: online)", positive=True)
    hidden: tuple[int, ...] = field((300, 150), "hidden widths (UPGD: 300, 150)", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    lr: float = field(0.01, "step size α (UPGD's SGD grid: 1e-2 … 1e-5)", positive=True, axis=True)


def _build_label_permuted(c: LabelPermutedConfig) -> Problem:
    stream = RelabeledData(
        RelabeledStreamConfig(
            data=c.data,
            data_dir=c.data_dir,
            relabel="permute",
            change_every=c.change_every,
            batch_size=c.batch_size,
        )
    )
    return mlp_classifier(stream, c)


def _label_permuted_run(c: LabelPermutedConfig) -> dict:
    """One bin per task, probes at every task's end, 20 tasks (the paper: 400)."""
    return _one_bin_per_task(
        c.change_every, 20, ("dead_fraction", "effective_rank", "weight_magnitude")
    )


LABEL_PERMUTED = Benchmark(
    name="label_permuted",
    summary="label-permuted EMNIST / CIFAR-10 / any labeled set: inputs unchanged, the "
    "classes re-permuted every change_every steps; online accuracy per task",
    source="Elsayed & Mahmood 2024 (ICLR, UPGD), §4.3",
    config=LabelPermutedConfig,
    build=_build_label_permuted,
    remedy_defaults={},
    run_defaults=_label_permuted_run,
)


# ---------------------------------------------------------------------------- random labels


@dataclasses.dataclass(frozen=True)
class RandomLabelsConfig(OptimizerConfig):
    """Random-label memorization (Lyle et al. 2023; Kumar et al. 2024)."""

    optimizer: str = field("adam", "sgd or adam (the source: Adam)", choices=("sgd", "adam"))
    lr: float = field(1e-3, "step size α", positive=True, axis=True)
    data: str = field("mnist", "labeled set whose images are memorized", choices=LABELED_DATA)
    data_dir: str | None = field(None, DATA_DIR_HELP)
    subset: int = field(1_200, "examples memorized (fixed per seed; 0: all)", nonnegative=True)
    steps_per_task: int = field(30_000, "the budget: steps per random labeling", positive=True)
    batch_size: int = field(16, "examples per step", positive=True)
    hidden: tuple[int, ...] = field((256, 256), "hidden widths", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))


def _build_random_labels(c: RandomLabelsConfig) -> Problem:
    stream = RelabeledData(
        RelabeledStreamConfig(
            data=c.data,
            data_dir=c.data_dir,
            relabel="random",
            change_every=c.steps_per_task,
            subset=c.subset,
            batch_size=c.batch_size,
        )
    )
    return mlp_classifier(stream, c)


def _random_labels_run(c: RandomLabelsConfig) -> dict:
    """One bin per task; train_accuracy on the whole subset at every task's end; 10 tasks."""
    return _one_bin_per_task(
        c.steps_per_task, 10, ("train_accuracy", "dead_fraction", "weight_magnitude")
    )


RANDOM_LABELS = Benchmark(
    name="random_labels",
    summary="random-label memorization: each task a fresh random labeling of a fixed subset, "
    "a fixed budget of steps; train_accuracy at every task's end",
    source="Lyle et al. 2023 (ICML), §3; Kumar et al. 2024 (CoLLAs)",
    config=RandomLabelsConfig,
    build=_build_random_labels,
    remedy_defaults={},
    run_defaults=_random_labels_run,
)


# ---------------------------------------------------------------------------- changing targets


@dataclasses.dataclass(frozen=True)
class ChangingTargetsConfig(OptimizerConfig):
    """Fixed vs changing targets on the same inputs (Sokar et al. 2023, §3, Fig. 3)."""

    optimizer: str = field("adam", "sgd or adam (the source: Adam)", choices=("sgd", "adam"))
    lr: float = field(1e-3, "step size α", positive=True, axis=True)
    data: str = field("cifar10", "labeled set", choices=LABELED_DATA)
    data_dir: str | None = field(None, DATA_DIR_HELP)
    targets: str = field(
        "changing", "fixed: the true labels throughout; changing: relabeled every "
        "change_every steps (from the true labels)", choices=("fixed", "changing"),
    )  # fmt: skip
    relabel: str = field(
        "shuffle", "how changing targets change: shuffle (labels permuted among the "
        "examples) or random (re-drawn uniformly)", choices=("shuffle", "random"),
    )  # fmt: skip
    change_every: int = field(
        2_000, "steps between target changes (and the bins of both arms)", positive=True
    )
    subset: int = field(10_000, "training examples used (fixed per seed; 0: all)", nonnegative=True)
    batch_size: int = field(100, "examples per step", positive=True)
    hidden: tuple[int, ...] = field((256, 256), "hidden widths", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))


def _build_changing_targets(c: ChangingTargetsConfig) -> Problem:
    changing = c.targets == "changing"
    stream = RelabeledData(
        RelabeledStreamConfig(
            data=c.data,
            data_dir=c.data_dir,
            relabel=c.relabel if changing else "none",
            change_every=c.change_every if changing else 0,
            subset=c.subset,
            batch_size=c.batch_size,
            relabel_first_task=False,
        )
    )
    return mlp_classifier(stream, c)


def _changing_targets_run(c: ChangingTargetsConfig) -> dict:
    """Ten change periods for either arm, a bin and a probe snapshot per period."""
    return _one_bin_per_task(
        c.change_every, 10, ("dormant_fraction", "dead_fraction", "train_accuracy")
    )


CHANGING_TARGETS = Benchmark(
    name="changing_targets",
    summary="non-stationary targets: the same inputs with fixed labels (targets=fixed) or "
    "labels shuffled / re-drawn every change_every steps; dormant units over training",
    source="Sokar et al. 2023 (ICML, ReDo), §3, Fig. 3",
    config=ChangingTargetsConfig,
    build=_build_changing_targets,
    remedy_defaults={},
    run_defaults=_changing_targets_run,
)
