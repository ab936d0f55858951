"""The driver's side of a study directory: create or extend it, lock it, plan, manifest.

The layout and the cell states are those of :mod:`lopkit.results._study`. A study
directory is only ever extended: a changed spec adds its new cells to ``cells.json`` and
keeps every old cell (and its results), marking whether the current ``study.yaml`` still
holds it. One driver at a time holds ``study.lock`` (an ``flock``, released by the kernel
when the driver dies, even by kill -9).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lopkit._errors import LopkitError
from lopkit.results import _study as layout
from lopkit.results._io import atomic_write_text

if TYPE_CHECKING:
    from lopkit.sweep._spec import Cell, StudySpec

LOCK_FILE = "study.lock"
TOKEN_FILE = ".study-token"


@contextlib.contextmanager
def study_lock(out: Path) -> Iterator[None]:
    """Hold the study's lock; LopkitError if another driver holds it."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LopkitError(f"another `lopkit sweep` is running on {out}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def cell_lock(run_dir: Path) -> Iterator[None]:
    """Hold a cell's lock while running it, waiting for an earlier holder to end: a cell
    process left over from a killed driver finishes dying before the next one starts."""
    lock = run_dir.parent / f".{run_dir.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_out_dir(out: Path) -> None:
    """A study may go into a new or empty directory or an existing study, nowhere else."""
    if out.exists() and not out.is_dir():
        raise LopkitError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / layout.CELLS_FILE).is_file():
        ignorable = {LOCK_FILE}
        if any(p.name not in ignorable for p in out.iterdir()):
            raise LopkitError(
                f"{out} is not empty and is not a lopkit study (no {layout.CELLS_FILE}); "
                "choose another --out"
            )


def study_token(out: Path) -> str:
    """A random token naming this study directory; a Ray task that can read the same
    token at the same path runs on a file system shared with the driver."""
    path = out / TOKEN_FILE
    if not path.is_file():
        atomic_write_text(path, uuid.uuid4().hex)
    return path.read_text().strip()


def prepare_study(out: Path, spec: StudySpec, spec_text: str, cells: list[Cell]) -> dict[str, Any]:
    """Write study.yaml and cells.json (old cells kept, ``in_spec`` updated); the registry."""
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        registry = layout.read_cells(out)
    except layout.NotAStudyError:
        registry = {"version": 1, "cells": {}}
    old = registry["cells"]
    for entry in old.values():
        entry["in_spec"] = False
    for cell in cells:
        old[cell.id] = {**cell.to_json(), "in_spec": True}
    keys = list(dict.fromkeys([*spec.swept_keys, *registry.get("swept_keys", [])]))
    registry["swept_keys"] = keys
    registry["condition_keys"] = spec.condition_keys
    registry["name"] = spec.name
    for entry in old.values():  # older cells get None for keys added later
        entry["swept"] = {k: entry["swept"].get(k) for k in keys}
    study_token(out)
    atomic_write_text(out / layout.STUDY_FILE, spec_text)
    atomic_write_text(out / layout.CELLS_FILE, json.dumps(registry, indent=1) + "\n")
    (out / layout.CELLS_DIR).mkdir(exist_ok=True)
    (out / layout.LOGS_DIR).mkdir(exist_ok=True)
    return registry


def states(out: Path, ids: list[str]) -> dict[str, str]:
    """The filesystem state of each cell (see :mod:`lopkit.results._study`)."""
    return {cid: layout.cell_state(layout.cell_dir(out, cid)) for cid in ids}


def plan(out: Path, ids: list[str], retry_failed: bool) -> tuple[list[str], dict[str, str]]:
    """(cells to run, their states now): pending and interrupted cells, failed ones only
    with ``retry_failed`` (their FAILED marker is then removed, the run kept to resume)."""
    now = states(out, ids)
    todo = []
    for cid in ids:
        if now[cid] in ("pending", "interrupted"):
            todo.append(cid)
        elif now[cid] == "failed" and retry_failed:
            run_dir = layout.cell_dir(out, cid)
            (run_dir / layout.FAILED).unlink()
            if not (run_dir / "config.yaml").is_file() and not any(run_dir.iterdir()):
                shutil.rmtree(run_dir)
            todo.append(cid)
    return todo, now


def write_manifest(out: Path, registry: dict[str, Any], running: set[str] = frozenset()) -> Path:
    """manifest.csv: one row per cell of the registry with its state now."""
    keys = registry["swept_keys"]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "state", "in_spec", *keys, "seconds", "error"])
    for cid, cell in registry["cells"].items():
        run_dir = layout.cell_dir(out, cid)
        state = "running" if cid in running else layout.cell_state(run_dir)
        done = layout.read_marker(run_dir, layout.DONE) if state == "done" else {}
        failed = layout.read_marker(run_dir, layout.FAILED) if state == "failed" else {}
        values = ["" if cell["swept"].get(k) is None else cell["swept"][k] for k in keys]
        seconds = done.get("seconds", "")
        writer.writerow(
            [cid, state, cell.get("in_spec", True), *values, seconds, failed.get("error", "")]
        )
    return atomic_write_text(out / layout.MANIFEST_FILE, buf.getvalue())


def default_jobs() -> int:
    """The cores this process may use (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
