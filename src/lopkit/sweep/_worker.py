"""Run one cell: make its experiment, run (or resume) it into its directory, mark it.

:func:`run_cell` is what every executor runs, in a process of its own (local) or in a
Ray worker. It makes the experiment from the cell's settings exactly as ``lopkit run``
does, refuses to run when this lopkit resolves the cell to another config than the
driver did (a different version on a cluster node), resumes from the run's checkpoint
when the run had started, and writes ``DONE`` only after ``metrics.parquet`` — so a
cell killed at any instant is never counted as done. An exception is recorded in
``FAILED`` with its message and traceback; the study goes on.

``python -m lopkit.sweep._worker STUDY CELL_ID`` is the local executor's cell process.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from lopkit.results import _study as layout

# XLA's CPU client runs one Eigen thread pool over all cores unless told otherwise.
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false"
DRIVER_VAR = "LOPKIT_SWEEP_DRIVER"  # the driver's pid, set by the local executor
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables capping one cell process at ``threads`` threads.

    BLAS/OpenMP pools get ``threads``, and so does lopkit's CPU device count
    (``LOPKIT_CPU_DEVICES``, :mod:`lopkit._devices`; one set in ``base`` is kept); with one
    thread XLA's Eigen pool is switched off (``--xla_cpu_multi_thread_eigen=false``, added
    to any XLA_FLAGS already set), so N cell processes on N cores do not oversubscribe them.
    """
    base = dict(base or {})
    env = {var: str(threads) for var in THREAD_VARS}
    env["LOPKIT_CPU_DEVICES"] = base.get("LOPKIT_CPU_DEVICES") or str(threads)
    flags = base.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        flags = f"{flags} {SINGLE_THREAD_XLA}".strip()
    if flags:
        env["XLA_FLAGS"] = flags
    return env


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run_cell(
    cell: dict[str, Any], run_dir: Path, where: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``cell`` (its ``to_json()``) into ``run_dir``; returns the DONE or FAILED
    marker's content with ``state`` added (and ``where``: e.g. the Ray node). Never raises
    for a failing run."""
    from lopkit._errors import LopkitError
    from lopkit._experiment import make_experiment, run_experiment
    from lopkit.sweep._spec import cell_id

    start = time.perf_counter()
    base = {"id": cell["id"], "host": socket.gethostname(), **(where or {}), "started_at": _now()}
    try:
        experiment = make_experiment(
            cell["benchmark"], cell["method"], cell["settings"], **cell["run"]
        )
        resolved_id = cell_id(experiment.resolved())
        if resolved_id != cell["id"]:
            raise LopkitError(
                f"this lopkit resolves cell {cell['id']} to another configuration "
                f"(id {resolved_id}); driver and workers must run the same lopkit version"
            )
        resume = (run_dir / "config.yaml").is_file()
        summary = run_experiment(experiment, run_dir, resume=resume, progress=False)
        if not summary["finished"]:
            raise LopkitError("the run stopped before its last step")
        marker = {
            **base,
            "state": "done",
            "metric": experiment.build()[1],
            "resumed": resume,
            "seconds": round(time.perf_counter() - start, 3),
            "finished_at": _now(),
        }
        layout.write_marker(run_dir, layout.DONE, marker)
    except Exception as err:  # the study goes on; the error is the cell's record
        marker = {
            **base,
            "state": "failed",
            "error": str(err) if isinstance(err, LopkitError) else f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
            "seconds": round(time.perf_counter() - start, 3),
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        layout.write_marker(run_dir, layout.FAILED, marker)
    finally:
        # A worker runs many cells in one process: each cell's compiled programs keep
        # their machine code mapped, and without releasing them a long study reaches the
        # kernel's limit on memory mappings (vm.max_map_count) and XLA crashes.
        import jax

        jax.clear_caches()
    return marker


def die_with_parent() -> None:
    """Make this process end when the one that started it ends (a killed driver must not
    leave cells running): ``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread."""
    parent = int(os.environ.get(DRIVER_VAR, os.getppid()))
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(137)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(137)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    from lopkit.sweep._study import cell_lock

    study, cid = (argv if argv is not None else sys.argv[1:])[:2]
    die_with_parent()
    cell = layout.read_cells(study)["cells"][cid]
    run_dir = layout.cell_dir(study, cid)
    with cell_lock(run_dir):
        marker = run_cell(cell, run_dir)
    if marker["state"] == "failed":
        print(marker["traceback"], file=sys.stderr)
    return 0 if marker["state"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
