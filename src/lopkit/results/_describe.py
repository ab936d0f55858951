"""What a figure says about a run: its reported metric, its tasks, readable labels.

A run's ``config.yaml`` carries a ``report`` section written when the run was made::

    report:
      metric: accuracy        # the benchmark's reported error metric
      steps_per_task: 1000    # task-based benchmarks with tasks of equal length, or
      task_starts: [0, ...]   # the first step of every task (tasks of different lengths)

Runs made before that section existed fall back to the first of :data:`REPORTED` in
their table, and to a step axis.

What a value is an average of (the y label says it): a benchmark's error metric is the
mean over the steps of a bin (the paper's online accuracy: the prediction made before each
update); a probe is a snapshot taken at the end of a bin (permuted inputs: on the new
task's examples). Binning over tasks (``bin_tasks``, the paper's 50-task bins for
continual ImageNet) averages each seed's values over N tasks before the mean and standard
error over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import ResultsError

__all__ = ["LABELS", "metric_label", "reported_metric", "task_of_step", "y_label"]

# The metric names lopkit records, in words (the paper's where it has them).
LABELS = {
    "mse": "Mean squared error",
    "accuracy": "Accuracy",
    "test_accuracy": "Test accuracy",
    "train_accuracy": "Training accuracy",
    "dead_fraction": "Fraction of dead units",
    "dormant_fraction": "Fraction of dormant units",
    "dormant_fraction_0.025": "Fraction of dormant units (τ 0.025)",
    "grama_dormant_fraction": "Fraction of gradient-dormant units (GraMa)",
    "duplicate_fraction": "Fraction of duplicate units (|ρ| > 0.95)",
    "feature_norm": "Feature norm E‖φ(x)‖₂",
    "preactivation_mean_shift": "Pre-activation mean − its value at init",
    "preactivation_std_ratio": "Pre-activation std / its value at init",
    "isometry_gap": "Isometry gap ‖WᵀW − I‖_F / ‖I‖_F",
    "effective_lr": "Relative update ‖ΔW‖ / ‖W‖ since the last probe",
    "churn": "Output churn E‖f_θ(x) − f_θprev(x)‖²",
    "inactive_fraction": "Fraction of inactive units",
    "linear_fraction": "Fraction of linearized units",
    "saturated_fraction": "Fraction of saturated units",
    "effective_rank": "Effective rank",
    "srank": "Stable rank",
    "approximate_rank": "Approximate rank (99% of variance)",
    "feature_rank": "Feature rank",
    "stable_rank_classic": "Stable rank ‖Φ‖²_F / σ₁²",
    "weight_magnitude": "Weight magnitude (mean |w|)",
    "param_norm": "Parameter norm ‖θ‖₂",
    "distance_from_init": "Distance from initialization ‖θ − θ₀‖₂",
    "grad_norm": "Gradient norm ‖∇θL‖₂",
    "ntk_rank": "NTK rank",
    "ntk_condition": "NTK condition number",
    "ntk_offdiag_ratio": "NTK mean |off-diagonal| / mean diagonal",
    "sharpness": "Sharpness (top Hessian eigenvalue)",
    "adam_mu_norm": "Adam first moment ‖m‖₂",
    "adam_nu_norm": "Adam second moment ‖v‖₂",
    "plasticity_probe": "Plasticity (1 − loss after / loss before)",
    "diverged": "Diverged seeds",
}
# Their whole-network row is the last hidden layer's value (the representation's rank).
LAST_LAYER = {"effective_rank", "srank", "approximate_rank", "feature_rank", "stable_rank_classic"}
# Their whole-network row pools the units of every hidden layer.
POOLED = {"dead_fraction", "dormant_fraction", "dormant_fraction_0.025", "inactive_fraction",
          "linear_fraction", "saturated_fraction", "grama_dormant_fraction",
          "duplicate_fraction", "feature_norm"}  # fmt: skip
# The metrics a benchmark reports per bin (averaged over the bin's steps), not probes.
REPORTED = ("mse", "accuracy", "train_accuracy")
ONLINE = {"accuracy": "Online accuracy", "train_accuracy": "Online training accuracy"}


def metric_label(metric: str, layer: str, layers: list[str] | None = None) -> str:
    """``Effective rank (hidden_2: the last hidden layer)``, ``Fraction of dead units (all
    hidden layers)``, ``Weight magnitude (mean |w|) (hidden_0)``, or the raw name if unknown.
    ``layers``: the layers the metric has in the table (to name the last hidden one)."""
    name = LABELS.get(metric, metric)
    if layer:
        return f"{name} ({layer})"
    hidden = sorted(x for x in layers or [] if x.startswith("hidden_"))
    if metric in LAST_LAYER:
        last = max(hidden, key=lambda x: int(x.split("_")[1])) if hidden else ""
        return f"{name} ({last + ': ' if last else ''}the last hidden layer)"
    if metric in POOLED:
        return f"{name} (all hidden layers)"
    if metric in ("weight_magnitude", "effective_lr"):
        return f"{name} (all layers)"
    if metric in ("isometry_gap", "preactivation_mean_shift", "preactivation_std_ratio"):
        return f"{name} (mean over layers)"
    return name


def reported_metric(configs: list[dict], df: pd.DataFrame) -> str:
    """The metric the runs report (``report.metric`` of their configs); for older runs the
    first of :data:`REPORTED` in the table. ValueError if the runs report different ones."""
    named = {c.get("report", {}).get("metric") for c in configs} - {None}
    if len(named) > 1:
        raise ResultsError(
            f"the runs report different metrics {sorted(named)}; choose one with metric"
        )
    if named:
        return named.pop()
    present = set(df["metric"].unique())
    for metric in REPORTED:
        if metric in present:
            return metric
    raise ResultsError(f"no reported metric in the table; choose one of {sorted(present)}")


def task_of_step(step: np.ndarray, report: dict) -> np.ndarray | None:
    """The 1-based task a bin ending at ``step`` belongs to (its last step's task), or None
    when the run has no tasks. A probe at a task boundary (the new task's examples) is
    counted with the task that just ended, as the bin it closes."""
    step = np.asarray(step, np.int64)
    if report.get("steps_per_task"):
        return (step + report["steps_per_task"] - 1) // report["steps_per_task"]
    if report.get("task_starts"):
        return np.searchsorted(np.asarray(report["task_starts"]), step, side="left")
    return None


def y_label(
    metric: str, layer: str, layers: list[str], config: dict, x: str, bin_tasks: int | None
) -> str:
    """The y label: the metric in words and what each point averages."""
    reported = metric == config.get("report", {}).get("metric") or (
        "report" not in config and metric in REPORTED
    )
    name = ONLINE.get(metric, LABELS.get(metric, metric)) if reported else None
    base = metric_label(metric, layer, layers) if name is None else name
    if bin_tasks:
        what = "mean over each task" if reported else "at each task's end"
        return f"{base}\n({what}, averaged over {bin_tasks} tasks)"
    bin_size = config.get("run", {}).get("bin_size")
    per_task = config.get("report", {}).get("steps_per_task")
    if reported and x == "task" and per_task and bin_size == per_task:
        return f"{base} (mean over each task)"
    if reported and bin_size:
        return f"{base} (mean over {bin_size:,} steps)"
    return base
