"""Remedies for loss of plasticity: one file each, a registry, one composition rule."""

from lopkit.methods._base import BoundaryEvent, Context, EmptyConfig, Parts, Remedy, UnitRule
from lopkit.methods._cbp import CBP, CBPConfig, contribution, max_replacements, select_replacements
from lopkit.methods._registry import REMEDIES, Composed, compose, parse_method, register, remedy_configs
from lopkit.methods._simple import L2Config, ShrinkPerturbConfig

__all__ = [
    "CBP",
    "REMEDIES",
    "BoundaryEvent",
    "CBPConfig",
    "Composed",
    "Context",
    "EmptyConfig",
    "L2Config",
    "Parts",
    "Remedy",
    "ShrinkPerturbConfig",
    "UnitRule",
    "compose",
    "contribution",
    "max_replacements",
    "parse_method",
    "register",
    "remedy_configs",
    "select_replacements",
]
