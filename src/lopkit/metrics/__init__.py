"""Plasticity diagnostics: pure functions on activations, parameters and optimizer state.

Written for one seed (the engine vmaps over seeds); jit- and vmap-able; inputs may be any
array ``jnp.asarray`` accepts. Definitions, defaults and sources: docs/metrics.md and
docs/design.md §11.
"""

from lopkit.metrics._curvature import sharpness
from lopkit.metrics._dynamics import (
    churn,
    effective_lr_per_layer,
    feature_norm,
    isometry_gap,
    isometry_gap_per_layer,
    preactivation_shift,
    relative_update,
)
from lopkit.metrics._gradients import feature_gradients
from lopkit.metrics._ntk import ntk_gram, ntk_summary
from lopkit.metrics._probe import adam_moment_norms, plasticity_probe
from lopkit.metrics._rank import (
    approximate_rank,
    effective_rank,
    feature_rank,
    singular_values,
    srank,
    stable_rank_classic,
)
from lopkit.metrics._units import (
    SATURATION_THRESHOLDS,
    as_units,
    dead_fraction,
    dormant_fraction,
    dormant_scores,
    duplicate_fraction,
    grama_dormant_fraction,
    grama_scores,
    inactive_fraction,
    linear_fraction,
    saturated_fraction,
)
from lopkit.metrics._weights import (
    distance_from_init,
    grad_norm,
    param_norm,
    path_str,
    weight_magnitude,
    weight_magnitude_per_layer,
)

__all__ = [
    "SATURATION_THRESHOLDS",
    "churn",
    "duplicate_fraction",
    "effective_lr_per_layer",
    "feature_gradients",
    "feature_norm",
    "grama_dormant_fraction",
    "grama_scores",
    "isometry_gap",
    "isometry_gap_per_layer",
    "preactivation_shift",
    "relative_update",
    "adam_moment_norms",
    "approximate_rank",
    "as_units",
    "dead_fraction",
    "distance_from_init",
    "dormant_fraction",
    "dormant_scores",
    "effective_rank",
    "feature_rank",
    "grad_norm",
    "inactive_fraction",
    "linear_fraction",
    "ntk_gram",
    "ntk_summary",
    "param_norm",
    "path_str",
    "plasticity_probe",
    "saturated_fraction",
    "sharpness",
    "singular_values",
    "srank",
    "stable_rank_classic",
    "weight_magnitude",
    "weight_magnitude_per_layer",
]
