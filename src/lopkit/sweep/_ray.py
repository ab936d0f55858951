"""The Ray executor: one plain ``@ray.remote`` task per cell (not Ray Tune).

The driver connects to a running cluster (``address``, e.g. ``auto`` after
``ray start --head``) or starts a local one with ``jobs`` CPUs for the study and stops it
at the end. Each task takes one CPU, runs :func:`lopkit.sweep._worker.run_cell` in its
worker with its threads capped, and is retried up to ``max_retries`` times when Ray loses
it (its worker or node died); an exception inside the run is not retried but recorded.

Where results go:

* **Shared path** (the study directory is visible at the same path on every node, e.g.
  NFS; always so on a local cluster): the task writes the cell directory itself,
  ``DONE`` last, exactly as the local executor does. A task knows it sees the driver's
  directory when it reads the study's random token (``.study-token``) there.
* **No shared path**: the task runs the cell in a temporary directory of its node (sent
  the cell's files, so an interrupted cell resumes) and returns the run directory's
  files; the driver writes them into ``cells/<id>/`` and writes the marker last.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from lopkit._errors import LopkitError
from lopkit.results import _study as layout
from lopkit.sweep._progress import Progress
from lopkit.sweep._study import TOKEN_FILE, cell_lock, write_manifest
from lopkit.sweep._worker import run_cell, thread_env

MARKERS = (layout.DONE, layout.FAILED)


def pack(run_dir: Path) -> dict[str, bytes]:
    """Every file under ``run_dir`` but the markers, by relative path."""
    if not run_dir.is_dir():
        return {}
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in MARKERS
    }


def unpack(files: dict[str, bytes], run_dir: Path) -> None:
    for name, data in files.items():
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def install(out: Path, cid: str, files: dict[str, bytes], marker: dict[str, Any]) -> None:
    """Replace ``cells/<cid>/`` by ``files``, then write the marker (last, so a driver
    killed in between leaves the cell not done)."""
    run_dir = layout.cell_dir(out, cid)
    incoming = run_dir.parent / f".{cid}.incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    unpack(files, incoming)
    shutil.rmtree(run_dir, ignore_errors=True)
    incoming.rename(run_dir)
    name = layout.DONE if marker["state"] == "done" else layout.FAILED
    layout.write_marker(run_dir, name, {**marker, "transferred": True})


def sees_study(study: str, token: str) -> bool:
    try:
        return (Path(study) / TOKEN_FILE).read_text().strip() == token
    except OSError:
        return False


def cell_task(
    cell: dict[str, Any], study: str, token: str, files: dict[str, bytes], transfer: bool
) -> dict[str, Any]:
    """The body of a cell's Ray task: ``{"marker": …, "files": None | {path: bytes}}``."""
    if not transfer and sees_study(study, token):
        run_dir = layout.cell_dir(study, cell["id"])
        with cell_lock(run_dir):
            return {"marker": run_cell(cell, run_dir), "files": None}
    with tempfile.TemporaryDirectory(prefix="lopkit-cell-") as tmp:
        run_dir = Path(tmp) / cell["id"]
        unpack(files, run_dir)
        marker = run_cell(cell, run_dir)
        return {"marker": marker, "files": pack(run_dir)}


def require_ray():
    """The ray module, or a LopkitError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise LopkitError(
            "the ray executor needs Ray: pip install 'lopkit[ray]' (or use --executor local)"
        ) from None
    return ray


def _lost(cid: str, err: Exception, retries: int) -> dict[str, Any]:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return {
        "id": cid,
        "state": "failed",
        "error": f"the Ray task was lost ({type(err).__name__}) after {retries} retries: {first}",
    }


def run_ray(
    out: Path,
    registry: dict[str, Any],
    todo: list[str],
    token: str,
    progress: Progress,
    address: str | None = None,
    jobs: int = 1,
    transfer: bool = False,
    max_retries: int = 3,
) -> dict[str, dict[str, Any]]:
    """Run the cells ``todo`` as Ray tasks; returns each cell's marker."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
            started = True
    task = ray.remote(cell_task).options(
        num_cpus=1,
        max_retries=max_retries,
        retry_exceptions=False,
        runtime_env={"env_vars": thread_env(1)},
    )
    cells = registry["cells"]
    pending: dict[Any, str] = {}
    results: dict[str, dict[str, Any]] = {}
    study = str(out.resolve())
    try:
        for cid in todo:
            files = pack(layout.cell_dir(out, cid)) if transfer else {}
            pending[task.remote(cells[cid], study, token, files, transfer)] = cid
            progress.started(cells[cid]["label"])
        write_manifest(out, registry, set(pending.values()))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            progress.tick()
            for ref in ready:
                cid = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:
                    marker = _lost(cid, err, max_retries)
                    layout.cell_dir(out, cid).mkdir(parents=True, exist_ok=True)
                    layout.write_marker(layout.cell_dir(out, cid), layout.FAILED, marker)
                else:
                    marker = result["marker"]
                    if result["files"] is not None:
                        install(out, cid, result["files"], marker)
                results[cid] = marker
                error = marker.get("error", "").splitlines()[0] if marker["state"] != "done" else ""
                progress.finished(
                    cells[cid]["label"], marker["state"], marker.get("seconds", 0.0), error
                )
                write_manifest(out, registry, set(pending.values()))
    finally:
        for ref in pending:  # interrupted: stop what is left; cells resume next time
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return results
