"""Typed, validated configuration dataclasses.

Every config in lopkit is a frozen dataclass whose fields carry their defaults (taken from
the source paper, cited in the class docstring) and a ``help`` string in the field
metadata. Overrides come as ``{name: value}`` with values either typed or strings (from
``--set key=value``); unknown names are errors, never ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any

from lopkit._errors import ConfigError


def field(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with a help string and optional checks.

    Checks: ``positive=True`` (> 0), ``nonnegative=True`` (>= 0), ``choices=(...)``,
    ``unit_interval=True`` (0 <= x <= 1), ``open_unit=True`` (0 <= x < 1). A tuple must
    hold at least one value unless ``may_be_empty=True``.

    ``axis=True`` marks a continuous setting that only feeds arithmetic (docs/design.md §6): it may
    take a list of values in one run (``--set lr=0.003,0.01``), all of them run as one
    compiled program; the code that reads it must then accept a traced scalar.
    """
    if isinstance(default, list | dict | set):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return dataclasses.field(default=default, metadata={"help": help, **checks})


def _suggest(name: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, name: str, valid: typing.Iterable[str]) -> ConfigError:
    """The error for a name that is not one of ``valid``: names it and lists the choices."""
    valid = sorted(valid)
    return ConfigError(
        f"unknown {kind} {name!r}{_suggest(name, valid)}; valid choices: {', '.join(valid)}"
    )


def _coerce(cls_name: str, f: dataclasses.Field, value: Any, hint: Any) -> Any:
    where = f"{cls_name}.{f.name}" if cls_name else f.name
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin is tuple:
        (elem,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if isinstance(value, str):
            items = [v for v in value.strip("()[] ").split(",") if v.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:  # one number for a tuple of them, e.g. `hidden: 100` in YAML
            items = [value]
        return tuple(_scalar(where, elem, v) for v in items)
    return _scalar(where, hint, value)


def _scalar(where: str, hint: Any, value: Any) -> Any:
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, bool | int):
                return bool(value)
            raise ValueError
        if hint is int:
            return _whole(where, value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value.strip()) if isinstance(value, str) else float(value)
            if math.isnan(number):
                raise ValueError
            return number
        if hint is str:
            return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(hint, hint)
        raise ConfigError(f"{where} must be {kind}, got {value!r}") from None
    return value


# The largest whole number a setting may hold: steps, sizes and seeds are 32-bit integers
# in the compiled program (JAX's default), so a larger one would overflow there.
INT_MAX = 2**31 - 1


def _whole(where: str, value: Any) -> int:
    """``value`` as a whole number in [−INT_MAX, INT_MAX]; a ConfigError saying what is
    wrong and what is allowed otherwise (a fraction, inf, nan, or too large a number:
    ``1e308`` names the range instead of overflowing later)."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        number: int | float = value
    else:
        text = value.strip().replace("_", "") if isinstance(value, str) else value
        number = float(text)
        if math.isfinite(number) and not number.is_integer():
            raise ValueError
    if not (isinstance(number, int) or math.isfinite(number)) or abs(number) > INT_MAX:
        raise ConfigError(
            f"{where} must be a finite whole number of at most {INT_MAX:,} (2**31 − 1: "
            f"steps, sizes and seeds are 32-bit integers in the compiled program), got {value!r}"
        )
    return int(number)


def nearest_multiples(value: int, unit: int, least: int = 1) -> str:
    """The multiples of ``unit`` nearest ``value`` below and above (those ≥ ``least``),
    as text for an error: ``"296,960 or 307,200"``."""
    below = value // unit * unit
    options = [v for v in (below, below + unit) if v >= least and v != value]
    return " or ".join(f"{v:,}" for v in options)


def nearest_divisors(value: int, of: int) -> str:
    """The divisors of ``of`` nearest ``value`` below and above, as text for an error."""
    small = [d for d in range(1, math.isqrt(of) + 1) if of % d == 0]
    divisors = sorted({*small, *(of // d for d in small)})
    below = [d for d in divisors if d < value][-1:]
    above = [d for d in divisors if d > value][:1]
    return " or ".join(f"{v:,}" for v in below + above)


def _example(f: dataclasses.Field) -> str:
    default = f.default if isinstance(f.default, tuple) else ()
    return ",".join(map(str, default)) or "1"


def _check(where: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if isinstance(value, tuple) and not value and not meta.get("may_be_empty"):
        raise ConfigError(
            f"{where} needs at least one value, got none (e.g. {f.name}={_example(f)})"
        )
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is None:
            continue
        if meta.get("positive") and not v > 0:
            raise ConfigError(f"{where} must be > 0, got {v!r}")
        if meta.get("nonnegative") and not v >= 0:
            raise ConfigError(f"{where} must be >= 0, got {v!r}")
        if meta.get("unit_interval") and not 0 <= v <= 1:
            raise ConfigError(f"{where} must be in [0, 1], got {v!r}")
        if meta.get("open_unit") and not 0 <= v < 1:
            raise ConfigError(f"{where} must be in [0, 1), got {v!r}")
        if "choices" in meta and v not in meta["choices"]:
            raise ConfigError(
                f"{where} must be one of {', '.join(map(str, meta['choices']))}; got {v!r}"
            )


def validate(config: Any) -> Any:
    """Check every field of a config dataclass against its declared checks; return it."""
    name = type(config).__name__
    for f in dataclasses.fields(config):
        _check(f"{name}.{f.name}", f, getattr(config, f.name))
    post = getattr(config, "check", None)
    if post is not None:
        post()
    return config


def build(cls: type, overrides: dict[str, Any] | None = None, prefix: str = "") -> Any:
    """Make ``cls`` from its defaults and ``overrides`` (typed or string values), validated.

    Raises ConfigError naming an unknown key (with the valid keys) or an invalid value.
    """
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in overrides.items():
        if key not in fields:
            valid = [prefix + k for k in fields]
            raise unknown_name("setting", prefix + key, valid)
        kwargs[key] = _coerce(prefix.rstrip(".") or cls.__name__, fields[key], value, hints[key])
    return validate(cls(**kwargs))


def coerce(cls: type, key: str, value: Any) -> Any:
    """``value`` (typed or a string) as the field ``key`` of ``cls``, with the field's own
    checks (not the class's ``check``, which may need the other fields)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[key]
    value = _coerce(cls.__name__, f, value, typing.get_type_hints(cls)[key])
    _check(f"{cls.__name__}.{key}", f, value)
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a config (tuples as lists), for YAML."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def static_zero(value: Any) -> bool:
    """True for a concrete 0; a traced value (a swept setting) is never statically zero, so
    code that skips work for a zero setting keeps that work when the setting is swept."""
    return isinstance(value, int | float) and value == 0


def is_axis(cls: type, key: str) -> bool:
    """Whether the field ``key`` of ``cls`` may take a list of values in one program."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return key in fields and bool(fields[key].metadata.get("axis"))


def is_tuple_field(cls: type, key: str) -> bool:
    """Whether the field ``key`` of ``cls`` holds a tuple (``hidden=100,100`` is one value)."""
    hint = typing.get_type_hints(cls).get(key)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) is tuple


def describe(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(key, default, help) for every field of ``cls``."""
    return [
        (prefix + f.name, f.default, f.metadata.get("help", "")) for f in dataclasses.fields(cls)
    ]


def remedy_key(key: str) -> tuple[str, str] | None:
    """``"cbp.replacement_rate"`` → ``("cbp", "replacement_rate")``; None for a key of the
    benchmark or the run (no dot)."""
    remedy, dot, sub = key.partition(".")
    return (remedy, sub) if dot else None


def route(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Settings split by owner: ``({key: value}`` of the benchmark/run,
    ``{remedy: {key: value}})`` of the remedies (keys ``remedy.key``), order kept."""
    plain: dict[str, Any] = {}
    remedies: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        owner = remedy_key(key)
        if owner is None:
            plain[key] = value
        else:
            remedies.setdefault(owner[0], {})[owner[1]] = value
    return plain, remedies
