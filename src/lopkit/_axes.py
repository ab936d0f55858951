"""Hyper-parameter axes: continuous settings that take a list of values in one run.

``--set l2.weight_decay=1e-4,1e-3 --set lr=0.003,0.01`` makes a grid of 2 × 2 values; with
K seeds the run is 4·K independent runs of *one* compiled program (docs/design.md §6): every value
reuses the same K seeds (paired comparisons), run r = h·K + k is grid point h with seed k,
grid points in the order of the product of the lists (the first setting varies slowest).

Only settings declared ``axis=True`` (:func:`lopkit._config.field`) may be lists: they only
feed arithmetic, so the program reads them as traced per-run scalars. A setting that
changes shapes or structure (a width, the number of tasks, an activation, a boolean, the
run's length) is refused as a list, with a pointer to ``lopkit sweep``, which runs one
program per value.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from typing import Any

import numpy as np

from lopkit import _config
from lopkit._errors import ConfigError

Axes = tuple[tuple[str, tuple[Any, ...]], ...]  # ((setting, (value, …)), …) in given order


def _values(value: Any) -> list[Any] | None:
    """The values of a list setting (``"1e-4,1e-3"`` or a Python list), None for one value."""
    if isinstance(value, str):
        items = [v.strip() for v in value.strip("[] ").split(",")]
        if len(items) < 2:
            return None
        if not all(items):
            raise ConfigError(f"a list of values has an empty item: {value!r}")
        return items
    if isinstance(value, list | tuple) and len(value) > 1:
        return list(value)
    if isinstance(value, list | tuple) and len(value) == 1:
        return None
    return None


def field_of(key: str, benchmark_config: type, remedies: dict[str, type], run: type):
    """(config class, field name) a ``--set`` key names, or None when it names nothing
    (the caller's own checks then say why)."""
    owner = _config.remedy_key(key)
    if owner is not None:
        cls = remedies.get(owner[0])
        return (cls, owner[1]) if cls is not None else None
    for cls in (benchmark_config, run):
        if key in {f.name for f in dataclasses.fields(cls)}:
            return cls, key
    return None


def split_lists(
    settings: dict[str, Any], benchmark_config: type, remedies: dict[str, type], run: type
) -> tuple[dict[str, Any], Axes]:
    """``settings`` with every list replaced by its first value, and the axes (the lists).

    A list for a setting that is not an axis is an error that points to ``lopkit sweep``;
    a tuple-valued setting (``hidden=100,100``) is one value, never a list.
    """
    scalars, axes = {}, []
    for key, value in settings.items():
        target = field_of(key, benchmark_config, remedies, run)
        if target is None or not dataclasses.is_dataclass(target[0]):
            scalars[key] = value
            continue
        cls, name = target
        if name not in {f.name for f in dataclasses.fields(cls)}:
            scalars[key] = value  # an unknown setting: named as such by the config build
            continue
        if _config.is_tuple_field(cls, name):
            scalars[key] = value
            continue
        values = _values(value)
        if values is None:
            scalars[key] = value[0] if isinstance(value, list | tuple) else value
            continue
        if not _config.is_axis(cls, name):
            raise ConfigError(
                f"{key} takes one value per run: it changes the program's shapes or structure "
                f"(got the list {','.join(map(str, values))}). Continuous settings such as "
                f"lr or l2.weight_decay take lists; to compare values of {key}, run one "
                f"program per value with `lopkit sweep` (a study; docs/studies.md)"
            )
        typed = tuple(_config.coerce(cls, name, v) for v in values)
        if len(set(typed)) != len(typed):
            raise ConfigError(f"{key} lists a value twice: {','.join(map(str, typed))}")
        axes.append((key, typed))
        scalars[key] = typed[0]
    return scalars, tuple(axes)


def grid(axes: Axes) -> list[dict[str, Any]]:
    """Every grid point as ``{setting: value}``: the product, the first setting slowest."""
    names = [name for name, _ in axes]
    return [
        dict(zip(names, point, strict=True)) for point in itertools.product(*(v for _, v in axes))
    ]


def dtype_of(cls: type, name: str) -> type:
    """int32 for a whole-number setting (a threshold), float32 otherwise."""
    return np.int32 if typing.get_type_hints(cls)[name] is int else np.float32


def run_settings(
    axes: Axes, dtypes: dict[str, type], seeds: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(seed ids ``[H·K]``, ``{setting: [H·K]}``) of the runs: grid point h, seed k at h·K + k."""
    points = grid(axes)
    seed_ids = np.tile(np.asarray(seeds, np.int32), len(points))
    values = {
        name: np.repeat(np.asarray([p[name] for p in points], dtypes[name]), len(seeds))
        for name, _ in axes
    }
    return seed_ids, values


def label(point: dict[str, Any]) -> str:
    """``l2.weight_decay=0.001,lr=0.01``: a grid point as text."""
    return ",".join(f"{k}={v}" for k, v in point.items())
