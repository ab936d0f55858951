"""Experiments: presets (YAML, ``<benchmark>.yaml`` here) and scripted studies (demo, warmstart)."""

from lopkit.experiments._presets import available_presets, load_preset, preset_settings

__all__ = ["available_presets", "load_preset", "preset_settings"]
