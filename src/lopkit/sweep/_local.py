"""The local executor: every cell in a process of its own, ``jobs`` at a time.

Each cell runs ``python -m lopkit.sweep._worker STUDY CELL`` with the driver's Python and
the driver's lopkit first on ``PYTHONPATH``, its output in ``logs/<cell>.log``, and its
threads capped at cores // jobs (:func:`lopkit.sweep._worker.thread_env`), so ``jobs``
processes share the cores without oversubscribing them. A cell process ends when the
driver does (kill -9 included); a cell whose process dies without a marker is recorded
as failed with its exit status and the end of its log.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lopkit
from lopkit.results import _study as layout
from lopkit.sweep._progress import Progress
from lopkit.sweep._study import default_jobs, write_manifest
from lopkit.sweep._worker import DRIVER_VAR, thread_env

POLL_SECONDS = 0.1
LOG_TAIL = 2000


def cell_env(jobs: int) -> dict[str, str]:
    """The environment of a cell process: the driver's, threads capped, this lopkit first."""
    threads = max(1, default_jobs() // max(1, jobs))
    source = str(Path(lopkit.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        **thread_env(threads, dict(os.environ)),
        DRIVER_VAR: str(os.getpid()),
        "PYTHONPATH": source + (os.pathsep + path if path else ""),
    }


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:].strip()
    except OSError:
        return ""


def _finish(out: Path, cid: str, code: int, seconds: float) -> dict[str, Any]:
    """The cell's marker after its process ended; FAILED written for a crashed process."""
    run_dir = layout.cell_dir(out, cid)
    state = layout.cell_state(run_dir)
    if state == "done":
        return {"state": "done", **layout.read_marker(run_dir, layout.DONE)}
    if state != "failed":
        run_dir.mkdir(parents=True, exist_ok=True)
        log = layout.log_path(out, cid)
        layout.write_marker(
            run_dir,
            layout.FAILED,
            {
                "id": cid,
                "error": f"the cell's process exited with status {code} and no result; "
                f"end of {log}:\n{_tail(log)}",
                "seconds": round(seconds, 3),
            },
        )
    return {"state": "failed", **layout.read_marker(run_dir, layout.FAILED)}


def run_local(
    out: Path, registry: dict[str, Any], todo: list[str], jobs: int, progress: Progress
) -> dict[str, dict[str, Any]]:
    """Run the cells ``todo`` of the study in ``out``; returns each cell's marker."""
    env = cell_env(jobs)
    queue = list(todo)
    running: dict[str, tuple[subprocess.Popen, float, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    cells = registry["cells"]
    try:
        while queue or running:
            while queue and len(running) < jobs:
                cid = queue.pop(0)
                log = open(layout.log_path(out, cid), "ab")  # closed when the cell ends
                log.write(f"--- {datetime.datetime.now(datetime.UTC):%F %T} UTC\n".encode())
                log.flush()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "lopkit.sweep._worker", str(out), cid],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # Ctrl-C reaches the driver, which stops cells
                )
                running[cid] = (proc, time.perf_counter(), log)
                progress.started(cells[cid]["label"])
                write_manifest(out, registry, set(running))
            time.sleep(POLL_SECONDS)
            progress.tick()
            for cid, (proc, start, log) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                log.close()
                del running[cid]
                marker = _finish(out, cid, code, time.perf_counter() - start)
                results[cid] = marker
                error = marker.get("error", "").splitlines()[0] if marker["state"] != "done" else ""
                progress.finished(
                    cells[cid]["label"], marker["state"], marker.get("seconds", 0.0), error
                )
                write_manifest(out, registry, set(running))
    finally:  # interrupted (Ctrl-C): stop the cells; they resume from their checkpoints
        for proc, _, _log in running.values():
            proc.terminate()
        for proc, _, log in running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    return results
