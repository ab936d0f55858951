"""A run's directory: its config.yaml, and whether a run there is resumed, refused or
replaced."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lopkit._errors import ConfigError, LopkitError
from lopkit._runconfig import EXECUTION_ONLY
from lopkit.results._store import read_config, write_config

if TYPE_CHECKING:
    from lopkit._experiment import Experiment


# Derived from the rest (runs made before these existed lack them): not compared on resume.
DERIVED = {"report", "chosen"}


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted((set(old) | set(new)) - (DERIVED if not prefix else set())):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b and key not in EXECUTION_ONLY:
            out.append(f"{prefix}{key}: {a!r} (saved) vs {b!r} (now)")
    return out


def prepare_run_dir(out: str | Path, experiment: Experiment, resume: bool, overwrite: bool) -> bool:
    """Check/prepare the output directory; returns True when resuming a started run.

    An existing run is never overwritten silently: it needs ``resume`` or ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LopkitError(
            f"--out {out} is a file, not a run directory; name a directory (e.g. runs/{out.stem})"
        )
    exists = out.exists() and any(out.iterdir())
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if resume:
        if not (out / "config.yaml").exists():
            raise LopkitError(f"cannot resume: {out} holds no run (no config.yaml)")
        diffs = _differences(read_config(out), experiment.resolved())
        if diffs:
            raise ConfigError(
                "cannot resume with a different configuration:\n  " + "\n  ".join(diffs)
            )
        return True
    if exists:
        if not overwrite:
            raise LopkitError(
                f"output directory {out} exists and is not empty; "
                "use --resume to continue it or --overwrite to replace it"
            )
        if not (out / "config.yaml").exists():
            raise LopkitError(f"refusing to overwrite {out}: it is not a lopkit run directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, experiment.resolved())
    return False
