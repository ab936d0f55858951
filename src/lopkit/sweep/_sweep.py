"""``lopkit sweep``: expand a study, then run the cells that are not done yet.

Order of work: the study file is read and every cell validated (nothing is written when
any is invalid); the study directory is created or extended under its lock; the cells to
run are chosen by a filesystem check (:func:`lopkit.sweep._study.plan`); the executor
runs them; the manifest is rewritten after every change. Running the same command again
skips the cells marked DONE, resumes interrupted ones from their checkpoints and leaves
failed ones alone unless ``retry_failed``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lopkit._errors import ConfigError
from lopkit.results import _study as layout
from lopkit.sweep._progress import Progress
from lopkit.sweep._spec import Cell, expand, load_spec
from lopkit.sweep._study import (
    check_out_dir,
    default_jobs,
    plan,
    prepare_study,
    states,
    study_lock,
    study_token,
    write_manifest,
)

EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep found and did. ``before``: each cell's state when it started;
    ``ran``: the marker of each cell run now; ``after``: each cell's state at the end."""

    out: Path
    cells: list[Cell]
    before: dict[str, str]
    ran: dict[str, dict]
    after: dict[str, str]

    def count(self, state: str, when: str = "after") -> int:
        return sum(s == state for s in getattr(self, when).values())

    def summary(self) -> str:
        done_now = sum(m["state"] == "done" for m in self.ran.values())
        parts = [
            f"{self.count('done')} done ({done_now} now, {self.count('done', 'before')} before)"
        ]
        for state in ("failed", "interrupted", "pending"):
            if self.count(state):
                parts.append(f"{self.count(state)} {state}")
        hint = ""
        if self.count("failed"):
            hint = f"; errors in {self.out / layout.MANIFEST_FILE}, rerun them with --retry-failed"
        return f"{self.out}: {len(self.cells)} cells: " + ", ".join(parts) + hint


def dry_run(spec_path: str | Path, out: str | Path) -> list[tuple[str, str, str]]:
    """(id, state, label) of every cell of the study, writing nothing. The state is
    ``new`` for a cell the study directory does not hold yet."""
    cells = expand(load_spec(spec_path))
    out = Path(out)
    known = set()
    if (out / layout.CELLS_FILE).is_file():
        known = set(layout.read_cells(out)["cells"])
    now = states(out, [c.id for c in cells])
    return [(c.id, now[c.id] if c.id in known else "new", c.label) for c in cells]


def sweep(
    spec_path: str | Path,
    out: str | Path,
    executor: str = "local",
    jobs: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    address: str | None = None,
    transfer: bool = False,
    max_retries: int = 3,
) -> SweepResult:
    """Run the study of ``spec_path`` into ``out`` (see the module docstring).

    ``jobs``: cells at once (default: the cores); ``executor``: ``local`` or ``ray``
    (``address``: a running cluster, else a local one is started; ``transfer``: send
    results back to the driver instead of writing them on a shared path).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; valid choices: {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be > 0, got {jobs}")
    if executor == "ray":
        from lopkit.sweep._ray import require_ray

        require_ray()  # before anything is written
    jobs = jobs or default_jobs()
    spec_path, out = Path(spec_path), Path(out)
    spec = load_spec(spec_path)
    cells = expand(spec)  # every cell validated before anything is written
    check_out_dir(out)
    with study_lock(out):
        registry = prepare_study(out, spec, spec_path.read_text(encoding="utf-8"), cells)
        ids = [c.id for c in cells]
        todo, before = plan(out, ids, retry_failed)
        write_manifest(out, registry)
        view = Progress(len(ids), jobs, enabled=progress)
        view.done = sum(before[i] == "done" for i in ids)  # counted, not run again
        view.failed = sum(before[i] == "failed" for i in ids if i not in todo)
        view.seconds = [  # the ETA starts from the cells done before
            layout.read_marker(layout.cell_dir(out, i), layout.DONE).get("seconds", 0.0)
            for i in ids
            if before[i] == "done"
        ]
        try:
            if executor == "local":
                from lopkit.sweep._local import run_local

                ran = run_local(out, registry, todo, jobs, view)
            else:
                from lopkit.sweep._ray import run_ray

                ran = run_ray(
                    out,
                    registry,
                    todo,
                    study_token(out),
                    view,
                    address=address,
                    jobs=jobs,
                    transfer=transfer,
                    max_retries=max_retries,
                )
        finally:
            view.close()
            write_manifest(out, registry)
        return SweepResult(out, cells, before, ran, states(out, ids))
