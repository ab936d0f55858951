"""Remedies for loss of plasticity: one file each, a registry, one composition rule."""

from lopkit.methods._adam_equal_betas import ADAM_EQUAL_BETAS, AdamEqualBetasConfig
from lopkit.methods._base import (
    BoundaryEvent,
    Context,
    EmptyConfig,
    Objective,
    Parts,
    Remedy,
    UnitRule,
)
from lopkit.methods._c_chain import C_CHAIN, CChainConfig, churn
from lopkit.methods._cbp import CBP, CBPConfig, contribution, max_replacements, select_replacements
from lopkit.methods._crelu import CRELU, CReLUConfig, matched_sizes, mlp_param_count
from lopkit.methods._dropout import DROPOUT, DropoutConfig
from lopkit.methods._hare_tortoise import HARE_TORTOISE, HareTortoiseConfig
from lopkit.methods._l2_decoupled import L2_DECOUPLED, L2DecoupledConfig
from lopkit.methods._l2_init import L2_INIT, L2InitConfig, add_init_offset
from lopkit.methods._layernorm import LAYERNORM
from lopkit.methods._plasticity_injection import (
    PLASTICITY_INJECTION,
    InjectedMLP,
    PlasticityInjectionConfig,
)
from lopkit.methods._redo import REDO, ReDoConfig, recycling_rule
from lopkit.methods._registry import (
    REMEDIES,
    Composed,
    compose,
    parse_method,
    register,
    remedy_configs,
)
from lopkit.methods._regrama import REGRAMA, ReGraMaConfig, gradient_magnitude
from lopkit.methods._reset_all import RESET_ALL
from lopkit.methods._reset_head import RESET_HEAD, ResetHeadConfig
from lopkit.methods._resets import (
    fresh_incoming,
    fresh_optimizer_state,
    replace_layer_everywhere,
    require_unit_layers,
    reset_units_everywhere,
    reset_units_where_any,
    zero_counts,
)
from lopkit.methods._sam import SAM, SAMConfig, sam_gradient
from lopkit.methods._shrink_perturb_boundary import (
    SHRINK_PERTURB_BOUNDARY,
    ShrinkPerturbBoundaryConfig,
)
from lopkit.methods._simple import L2Config, ShrinkPerturbConfig
from lopkit.methods._snr import SNR, SNRConfig, silence_threshold
from lopkit.methods._trac import TRAC, TRACConfig, TRACState, erfi, trac
from lopkit.methods._upgd import UPGD, UPGDConfig, UPGDState, gated_gradient, upgd
from lopkit.methods._weight_clip import WEIGHT_CLIP, WeightClipConfig, layer_bounds

__all__ = [
    "ADAM_EQUAL_BETAS",
    "C_CHAIN",
    "CBP",
    "CRELU",
    "DROPOUT",
    "HARE_TORTOISE",
    "L2_DECOUPLED",
    "L2_INIT",
    "LAYERNORM",
    "PLASTICITY_INJECTION",
    "REDO",
    "REGRAMA",
    "REMEDIES",
    "RESET_ALL",
    "RESET_HEAD",
    "SAM",
    "SHRINK_PERTURB_BOUNDARY",
    "SNR",
    "TRAC",
    "UPGD",
    "WEIGHT_CLIP",
    "AdamEqualBetasConfig",
    "BoundaryEvent",
    "CChainConfig",
    "CBPConfig",
    "CReLUConfig",
    "Composed",
    "Context",
    "DropoutConfig",
    "EmptyConfig",
    "HareTortoiseConfig",
    "InjectedMLP",
    "L2Config",
    "L2DecoupledConfig",
    "L2InitConfig",
    "Objective",
    "Parts",
    "PlasticityInjectionConfig",
    "ReDoConfig",
    "ReGraMaConfig",
    "Remedy",
    "ResetHeadConfig",
    "SAMConfig",
    "SNRConfig",
    "ShrinkPerturbBoundaryConfig",
    "ShrinkPerturbConfig",
    "TRACConfig",
    "TRACState",
    "UPGDConfig",
    "UPGDState",
    "UnitRule",
    "WeightClipConfig",
    "add_init_offset",
    "churn",
    "compose",
    "contribution",
    "erfi",
    "fresh_incoming",
    "fresh_optimizer_state",
    "gradient_magnitude",
    "gated_gradient",
    "layer_bounds",
    "matched_sizes",
    "max_replacements",
    "mlp_param_count",
    "parse_method",
    "recycling_rule",
    "register",
    "remedy_configs",
    "replace_layer_everywhere",
    "require_unit_layers",
    "reset_units_everywhere",
    "reset_units_where_any",
    "sam_gradient",
    "select_replacements",
    "silence_threshold",
    "trac",
    "upgd",
    "zero_counts",
]
