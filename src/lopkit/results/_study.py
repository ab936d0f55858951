"""The study store: ``studies/<name>/`` on disk, and loading it into pandas (docs/design.md §9).

Layout of a study directory::

    studies/<name>/
        study.yaml        the study file, as last given to `lopkit sweep`
        cells.json        every cell ever expanded: id → benchmark, method, settings, swept
                          values, and whether the current study.yaml still holds it
        manifest.csv      one row per cell: id, state, swept settings, seconds, error
        cells/<id>/       the cell's run directory (config.yaml, metrics.parquet, checkpoint/)
                          plus DONE (written last, when the run is complete) or FAILED
        logs/<id>.log     the output of the cell's process

The state of a cell is a filesystem check, the same locally and on a cluster: ``done``
when ``DONE`` exists; ``failed`` when ``FAILED`` exists; ``interrupted`` when the run has
started (``config.yaml``) but is not done; else ``pending``. ``manifest.csv`` is a view of
these states written by the driver, never read back to decide anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .._errors import LopkitError
from ._io import atomic_write_text
from ._store import load

__all__ = ["NotAStudyError", "cell_state", "load_study", "read_cells"]

STUDY_FILE = "study.yaml"
CELLS_FILE = "cells.json"
MANIFEST_FILE = "manifest.csv"
CELLS_DIR = "cells"
LOGS_DIR = "logs"
DONE = "DONE"
FAILED = "FAILED"
STATES = ("done", "failed", "interrupted", "pending")


class NotAStudyError(LopkitError, FileNotFoundError):
    """The directory does not exist or holds no ``cells.json``."""


def cell_dir(study: str | os.PathLike, cell: str) -> Path:
    return Path(study) / CELLS_DIR / cell


def log_path(study: str | os.PathLike, cell: str) -> Path:
    return Path(study) / LOGS_DIR / f"{cell}.log"


def cell_state(run_dir: str | os.PathLike) -> str:
    """``done`` | ``failed`` | ``interrupted`` | ``pending``, from the files of a cell."""
    run_dir = Path(run_dir)
    if (run_dir / DONE).is_file():
        return "done"
    if (run_dir / FAILED).is_file():
        return "failed"
    if (run_dir / "config.yaml").is_file():
        return "interrupted"
    return "pending"


def read_marker(run_dir: str | os.PathLike, name: str) -> dict[str, Any]:
    """The JSON of a cell's DONE or FAILED marker ({} when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_marker(run_dir: str | os.PathLike, name: str, content: dict[str, Any]) -> Path:
    return atomic_write_text(Path(run_dir) / name, json.dumps(content, indent=1) + "\n")


def read_cells(study: str | os.PathLike) -> dict[str, Any]:
    """``cells.json`` of a study: ``{"swept_keys": [...], "condition_keys": [...],
    "cells": {id: {...}}}``. Raises NotAStudyError when there is none."""
    path = Path(study) / CELLS_FILE
    if not path.is_file():
        raise NotAStudyError(f"not a study directory: {str(study)!r} has no {CELLS_FILE}")
    return json.loads(path.read_text(encoding="utf-8"))


def _column(values: list[Any]) -> pd.Series:
    values = [tuple(v) if isinstance(v, list) else v for v in values]
    return pd.Series(values, dtype=object).infer_objects()


def load_study(study: str | os.PathLike, include_removed: bool = False) -> pd.DataFrame:
    """The metrics of every finished cell of a study in one tidy frame.

    Columns: ``run`` (the cell id), ``benchmark``, then one column per swept setting
    (``method``, the grid's keys, the methods' settings; None/NaN where a setting does not
    apply to a cell), then ``seed``, ``step``, ``metric``, ``layer``, ``value`` as in
    :func:`lopkit.results.load`. Only cells marked DONE are read; cells the current
    study.yaml no longer holds are left out unless ``include_removed``.
    """
    registry = read_cells(study)
    keys = [k for k in registry["swept_keys"] if k != "benchmark"]
    frames = []
    for cid, cell in registry["cells"].items():
        if not (cell.get("in_spec", True) or include_removed):
            continue
        run_dir = cell_dir(study, cid)
        if cell_state(run_dir) != "done":
            continue
        df = load(run_dir)
        info = {"benchmark": cell["benchmark"], **{k: cell["swept"].get(k) for k in keys}}
        for i, (key, value) in enumerate(info.items()):
            df.insert(1 + i, key, _column([value] * len(df)))
        frames.append(df)
    if not frames:
        columns = ["run", "benchmark", *keys, "seed", "step", "metric", "layer", "value"]
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    for key in keys:  # a column holds one type: numbers (NaN where absent) or objects
        out[key] = _column(out[key].tolist())
    return out
