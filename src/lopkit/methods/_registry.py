"""The remedy registry and composition (``--method cbp+l2``); see ``_base`` for the rule."""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

from lopkit import _config
from lopkit._errors import ConfigError
from lopkit.methods._adam_equal_betas import ADAM_EQUAL_BETAS
from lopkit.methods._base import (
    BoundaryEvent,
    Context,
    GradientFn,
    Objective,
    Parts,
    Remedy,
    UnitRule,
)
from lopkit.methods._c_chain import C_CHAIN
from lopkit.methods._cbp import CBP
from lopkit.methods._crelu import CRELU
from lopkit.methods._dash import DASH
from lopkit.methods._dff import DFF
from lopkit.methods._dropout import DROPOUT
from lopkit.methods._fire import FIRE
from lopkit.methods._hare_tortoise import HARE_TORTOISE
from lopkit.methods._l2_decoupled import L2_DECOUPLED
from lopkit.methods._l2_init import L2_INIT
from lopkit.methods._layernorm import LAYERNORM
from lopkit.methods._nap import NAP
from lopkit.methods._parseval import PARSEVAL
from lopkit.methods._plasticity_injection import PLASTICITY_INJECTION
from lopkit.methods._redo import REDO
from lopkit.methods._regrama import REGRAMA
from lopkit.methods._reset_all import RESET_ALL
from lopkit.methods._reset_head import RESET_HEAD
from lopkit.methods._sam import SAM
from lopkit.methods._shrink_perturb_boundary import SHRINK_PERTURB_BOUNDARY
from lopkit.methods._simple import BACKPROP, L2, SHRINK_PERTURB
from lopkit.methods._snr import SNR
from lopkit.methods._spectral import SPECTRAL
from lopkit.methods._trac import TRAC
from lopkit.methods._upgd import UPGD
from lopkit.methods._weight_clip import WEIGHT_CLIP

# One entry per remedy, in the order `lopkit list` shows them.
REMEDIES: dict[str, Remedy] = {
    r.name: r
    for r in (
        BACKPROP,
        L2,
        SHRINK_PERTURB,
        CBP,
        L2_DECOUPLED,
        L2_INIT,
        SHRINK_PERTURB_BOUNDARY,
        REDO,
        SNR,
        LAYERNORM,
        CRELU,
        DROPOUT,
        ADAM_EQUAL_BETAS,
        UPGD,
        WEIGHT_CLIP,
        RESET_HEAD,
        RESET_ALL,
        PARSEVAL,
        SPECTRAL,
        NAP,
        FIRE,
        DASH,
        DFF,
        C_CHAIN,
        SAM,
        HARE_TORTOISE,
        REGRAMA,
        TRAC,
        PLASTICITY_INJECTION,
    )
}


def register(remedy: Remedy) -> Remedy:
    """Add a remedy of your own to the registry, under its name (a clear error if the name
    is taken): ``lopkit.methods.register(MY_REMEDY)``, then ``--method my_remedy+l2``.
    lopkit's own remedies are the table above, one line each."""
    if remedy.name in REMEDIES:
        raise ConfigError(f"a remedy named {remedy.name!r} is already registered")
    unknown = set(remedy.parts) - PART_NAMES
    if unknown:
        raise ConfigError(
            f"remedy {remedy.name!r} declares unknown parts {sorted(unknown)}; "
            f"parts are {sorted(PART_NAMES)}"
        )
    REMEDIES[remedy.name] = remedy
    return remedy


PART_NAMES = frozenset(f.name for f in dataclasses.fields(Parts))


def parse_method(method: str) -> list[str]:
    """``"cbp+l2"`` → ``["cbp", "l2"]``, each checked against the registry."""
    names = [n.strip() for n in method.split("+")]
    if not method.strip() or any(not n for n in names):
        raise ConfigError(f"method {method!r} is empty or has an empty part; e.g. 'cbp+l2'")
    for n in names:
        if n not in REMEDIES:
            raise _config.unknown_name("remedy", n, REMEDIES)
    if len(set(names)) != len(names):
        raise ConfigError(f"method {method!r} names a remedy twice")
    return [n for n in names if n != "backprop"] or ["backprop"]


@dataclasses.dataclass(frozen=True)
class Composed:
    """The composed method: ordered remedy names, their configs, their parts."""

    names: tuple[str, ...]
    configs: tuple[Any, ...]
    parts: tuple[Parts, ...]

    @property
    def label(self) -> str:
        return "+".join(self.names)

    def merged(self, kind: str, base: dict[str, Any]) -> dict[str, Any]:
        """Apply the remedies' architecture or optimizer changes to ``base`` (conflicts: error)."""
        out, owner = dict(base), {}
        for name, part in zip(self.names, self.parts, strict=True):
            change = getattr(part, kind) or {}
            for key, value in change.items():
                if key in owner:
                    raise ConfigError(
                        f"remedies {owner[key]!r} and {name!r} both change the {kind} "
                        f"setting {key!r}; they cannot be combined"
                    )
                owner[key] = name
                out[key] = value
        return out

    def transformation(
        self, optimizer: optax.GradientTransformation
    ) -> optax.GradientTransformationExtraArgs:
        """chain(gradient parts…, optimizer, update parts…)."""
        pre = [p.gradient for p in self.parts if p.gradient is not None]
        post = [p.update for p in self.parts if p.update is not None]
        return optax.chain(*pre, optimizer, *post)

    @property
    def unit_rules(self) -> tuple[UnitRule, ...]:
        return tuple(p.unit_rule for p in self.parts if p.unit_rule is not None)

    @property
    def boundary_events(self) -> tuple[BoundaryEvent, ...]:
        return tuple(p.boundary for p in self.parts if p.boundary is not None)

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return tuple(p.objective for p in self.parts if p.objective is not None)

    @property
    def gradient_fn(self) -> GradientFn | None:
        """The one wrapper of the gradient computation (``compose`` refuses two), or None."""
        return next((p.gradient_fn for p in self.parts if p.gradient_fn is not None), None)

    @property
    def has_evaluation(self) -> bool:
        return any(p.evaluation is not None for p in self.parts)

    def wrap_network(self, net: Any) -> Any:
        """``net`` wrapped by the one network part (``compose`` refuses two), else ``net``."""
        for part in self.parts:
            if part.network is not None:
                return part.network(net)
        return net

    def evaluation_params(self, rule_states: list[Any], params: Any) -> Any:
        """The params that predict: the evaluation part's (from its remedy's unit-rule
        state), else ``params``."""
        j = 0  # the index of each remedy's unit rule among the rules
        for part in self.parts:
            if part.evaluation is not None:
                return part.evaluation(rule_states[j], params)
            j += part.unit_rule is not None
        return params


def remedy_configs(
    names: list[str],
    overrides: dict[str, dict[str, Any]],
    defaults: dict[str, dict[str, Any]] | None = None,
) -> tuple[Any, ...]:
    """Typed configs for ``names``: the remedy's defaults, then the benchmark's, then the user's.

    ``overrides`` keys must be remedies in ``names``; an override for a remedy that is not
    part of the method is an error (it would be silently ignored otherwise).
    """
    for remedy_name in overrides:
        if remedy_name not in REMEDIES:
            raise _config.unknown_name("remedy", remedy_name, REMEDIES)
        if remedy_name not in names:
            raise ConfigError(
                f"setting for remedy {remedy_name!r}, which is not in the method "
                f"{'+'.join(names)!r}"
            )
    defaults = defaults or {}
    configs = []
    for n in names:
        values = {**defaults.get(n, {}), **overrides.get(n, {})}
        configs.append(_config.build(REMEDIES[n].config, values, prefix=f"{n}."))
    return tuple(configs)


def compose(
    names: list[str],
    configs: tuple[Any, ...],
    ctx: Context,
    ceilings: tuple[Any, ...] | None = None,
) -> Composed:
    """The composed method; ``ceilings`` (one per remedy, or None) go to each remedy's
    :attr:`Context.ceiling` when its config holds swept (traced) settings."""
    ceilings = ceilings or (None,) * len(names)
    parts = tuple(
        REMEDIES[n].build(c, ctx._replace(ceiling=top))
        for n, c, top in zip(names, configs, ceilings, strict=True)
    )
    for n, p in zip(names, parts, strict=True):
        given = {f.name for f in dataclasses.fields(p) if getattr(p, f.name) is not None}
        if not given <= set(REMEDIES[n].parts):  # what `lopkit list` says it changes
            raise AssertionError(
                f"remedy {n!r} built parts {sorted(given)} but declares {REMEDIES[n].parts}"
            )
    for kind, what in (
        ("gradient_fn", "wrap the gradient computation"),
        ("evaluation", "replace the parameters that predict"),
        ("network", "wrap the network"),
    ):
        owners = [n for n, p in zip(names, parts, strict=True) if getattr(p, kind) is not None]
        if len(owners) > 1:
            raise ConfigError(
                f"remedies {owners[0]!r} and {owners[1]!r} both {what}; they cannot be "
                "combined (one of them at a time)"
            )
    for n, p in zip(names, parts, strict=True):
        if p.evaluation is not None and p.unit_rule is None:
            raise AssertionError(f"remedy {n!r} gives evaluation params without a unit rule")
    return Composed(tuple(names), configs, parts)
