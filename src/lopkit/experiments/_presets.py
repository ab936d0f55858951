"""Presets: named sets of settings for a benchmark, stored as YAML next to this module.

``experiments/<benchmark>.yaml`` maps preset names to::

    summary: one line (what the preset reproduces or shows)
    settings: {benchmark settings, as for --set}      # optional
    run:      {run settings: seeds, steps, bin_size…}  # optional
    remedies: {<remedy>: {setting: value}}             # optional

A preset is only data: every value is validated by the typed configs when the experiment
is made, exactly as if it had been given with ``--set``. :func:`preset_settings` flattens
a preset into ``--set``-style keys for a method; remedy settings of remedies not in the
method are left out (a preset may tune several remedies), and the user's own ``--set``
values override the preset's.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from lopkit._config import unknown_name
from lopkit._errors import ConfigError

SECTIONS = ("summary", "settings", "run", "remedies")


@functools.cache
def _file(benchmark: str) -> dict[str, dict[str, Any]]:
    path = resources.files("lopkit.experiments") / f"{benchmark}.yaml"
    if not path.is_file():
        return {}
    presets = yaml.safe_load(path.read_text()) or {}
    for name, preset in presets.items():
        where = f"preset {benchmark}/{name} ({path})"
        if not isinstance(preset, dict):
            raise ConfigError(f"{where} must be a mapping of {', '.join(SECTIONS)}")
        for section, value in preset.items():
            if section not in SECTIONS:
                raise unknown_name(f"section of {where}", section, SECTIONS)
            if section != "summary" and not isinstance(value, dict):
                raise ConfigError(f"{where}: {section} must be a mapping")
    return presets


def available_presets(benchmark: str) -> list[str]:
    """Names of the presets of ``benchmark`` (empty when it has none)."""
    return sorted(_file(benchmark))


def load_preset(benchmark: str, name: str) -> dict[str, Any]:
    """The preset ``name`` of ``benchmark``: ``{"summary", "settings", "run", "remedies"}``.

    Raises ConfigError for an unknown preset, listing the available ones.
    """
    presets = _file(benchmark)
    if name not in presets:
        if not presets:
            raise ConfigError(f"benchmark {benchmark!r} has no presets")
        raise ConfigError(f"{unknown_name('preset', name, presets)} (benchmark {benchmark!r})")
    preset = presets[name]
    return {
        "summary": preset.get("summary", ""),
        "settings": dict(preset.get("settings") or {}),
        "run": dict(preset.get("run") or {}),
        "remedies": {r: dict(v or {}) for r, v in (preset.get("remedies") or {}).items()},
    }


def preset_settings(preset: dict[str, Any], method: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A preset as ``--set``-style settings for ``method`` (its remedy names).

    Benchmark and run settings as they are; ``<remedy>.<key>`` for remedies in ``method``.
    """
    from lopkit.methods import REMEDIES

    out = {**preset["settings"], **preset["run"]}
    for remedy, values in preset["remedies"].items():
        if remedy not in REMEDIES:  # a misspelt remedy would otherwise be dropped silently
            raise unknown_name("remedy in preset", remedy, REMEDIES)
        if remedy in method:
            out.update({f"{remedy}.{k}": v for k, v in values.items()})
    return out
