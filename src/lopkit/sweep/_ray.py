"""The Ray executor: one plain ``@ray.remote`` task per cell (not Ray Tune).

The driver connects to a running cluster (``address``, e.g. ``auto`` after
``ray start --head``) or starts a local one with ``jobs`` CPUs for the study and stops it
at the end. Each task takes one CPU, runs :func:`lopkit.sweep._worker.run_cell` in its
worker with its threads capped, and is retried up to ``max_retries`` times when Ray loses
it (its worker or node died); an exception inside the run is not retried but recorded.
A cell's DONE or FAILED marker names the Ray node that ran it (``node``).

Where results go:

* **Shared path** (the study directory is visible at the same path on every node, e.g.
  NFS; always so on a local cluster): the task writes the cell directory itself,
  ``DONE`` last, exactly as the local executor does. A task knows it sees the driver's
  directory when it reads the study's random token (``.study-token``) there.
* **No shared path**: the task runs the cell in a temporary directory of its node and
  returns the run directory's files; the driver writes them into ``cells/<id>/`` and
  writes the marker last. The cell's files live on the driver's node: an :class:`Inbox`
  actor there hands a task the cell's files when it starts (so an interrupted cell
  resumes) and receives each new checkpoint while it runs (with the metrics parts it goes
  with), so a task retried on another node after its node died resumes from the last
  checkpoint instead of step 0.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lopkit._errors import LopkitError
from lopkit.results import _study as layout
from lopkit.results._io import TMP_SUFFIX
from lopkit.sweep._progress import Progress
from lopkit.sweep._study import TOKEN_FILE, cell_lock, write_manifest
from lopkit.sweep._worker import run_cell, thread_env

MARKERS = (layout.DONE, layout.FAILED)
CHECKPOINT = "checkpoint/state.npz"  # lopkit.engine._checkpoint.checkpoint_path
SYNC_SECONDS = 1.0  # how often a running cell without a shared path looks for a checkpoint


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


def install(out: Path, cid: str, files: dict[str, bytes], marker: dict[str, Any] | None) -> None:
    """Replace ``cells/<cid>/`` by ``files``, then write the marker if any (last, so a
    driver killed in between leaves the cell not done)."""
    run_dir = layout.cell_dir(out, cid)
    incoming = run_dir.parent / f".{cid}.incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    unpack(files, incoming)
    shutil.rmtree(run_dir, ignore_errors=True)
    incoming.rename(run_dir)
    if marker is None:
        return
    name = layout.DONE if marker["state"] == "done" else layout.FAILED
    layout.write_marker(run_dir, name, {**marker, "transferred": True})


def snapshot(run_dir: Path) -> dict[str, bytes] | None:
    """The files of a running cell as of its latest checkpoint, or None before the first.
    The checkpoint is read first: every metrics part it goes with was written before it,
    and a resumed run drops the parts written after it."""
    try:
        files = {CHECKPOINT: (run_dir / CHECKPOINT).read_bytes()}
    except FileNotFoundError:
        return None
    for p in sorted(run_dir.rglob("*")):
        name = str(p.relative_to(run_dir))
        if name == CHECKPOINT or p.name in MARKERS or p.name.endswith(TMP_SUFFIX):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            files[name] = p.read_bytes()  # a file may go (finalize removes the parts)
    return files


class Inbox:
    """An actor on the driver's node holding the cells' files when the study has no shared
    path: ``get`` gives a starting task its cell's files, ``put`` stores a running cell's
    latest checkpoint in ``cells/<id>/`` (without a marker: the cell is interrupted there
    until its task returns)."""

    def __init__(self, study: str):
        self.study = Path(study)

    def get(self, cid: str) -> dict[str, bytes]:
        return pack(layout.cell_dir(self.study, cid))

    def put(self, cid: str, files: dict[str, bytes]) -> None:
        install(self.study, cid, files, None)


@contextlib.contextmanager
def sending_checkpoints(inbox: Any, cid: str, run_dir: Path) -> Iterator[None]:
    """While the body runs, send each new checkpoint of ``run_dir`` to ``inbox``."""
    import ray

    stop = threading.Event()

    def send() -> None:
        sent = None
        while not stop.wait(SYNC_SECONDS):
            try:
                stamp = (run_dir / CHECKPOINT).stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if stamp != sent and (files := snapshot(run_dir)) is not None:
                ray.get(inbox.put.remote(cid, files))
                sent = stamp

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield
    finally:  # nothing is sent after the task returns (the driver then installs the cell)
        stop.set()
        thread.join()


def sees_study(study: str, token: str) -> bool:
    try:
        return (Path(study) / TOKEN_FILE).read_text().strip() == token
    except OSError:
        return False


def cell_task(
    cell: dict[str, Any], study: str, token: str, inbox: Any, transfer: bool
) -> dict[str, Any]:
    """The body of a cell's Ray task: ``{"marker": …, "files": None | {path: bytes}}``.
    ``inbox``: the :class:`Inbox` actor, or None (a local cluster: always a shared path)."""
    import ray

    where = {"node": ray.get_runtime_context().get_node_id()}
    if not transfer and sees_study(study, token):
        run_dir = layout.cell_dir(study, cell["id"])
        with cell_lock(run_dir):
            return {"marker": run_cell(cell, run_dir, where), "files": None}
    if inbox is None:
        raise LopkitError(f"this node does not see the study directory {study}")
    with tempfile.TemporaryDirectory(prefix="lopkit-cell-") as tmp:
        run_dir = Path(tmp) / cell["id"]
        unpack(ray.get(inbox.get.remote(cell["id"])), run_dir)
        with sending_checkpoints(inbox, cell["id"], run_dir):
            marker = run_cell(cell, run_dir, where)
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
    inbox = None
    if transfer or not started:  # a cluster whose nodes may not share the study's path
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        inbox = ray.remote(Inbox).options(num_cpus=0, scheduling_strategy=here).remote(study)
    try:
        for cid in todo:
            pending[task.remote(cells[cid], study, token, inbox, transfer)] = cid
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
        if inbox is not None:
            ray.kill(inbox)
        if started:
            ray.shutdown()
    return results
