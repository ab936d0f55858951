"""The host loop: run a program chunk by chunk, record, checkpoint, resume.

The host only loops over chunks; each chunk is one call of the compiled program. Between
chunks it converts the chunk's per-bin outputs into tidy rows (one part file per chunk),
updates the progress bar, and every ``checkpoint_every`` chunks writes the state. Results
are O(bins): nothing is kept per step.

Chunks are sized by time unless a fixed ``chunk_bins`` is given (:func:`next_chunk_bins`):
the first two chunks are one bin each (the first compiles, the second measures the speed),
so a checkpoint exists as soon as one bin has run; later chunks take about
``checkpoint_seconds`` each, so an interruption loses about that much work.

Ctrl-C (SIGINT) is deferred to the end of the running chunk: a compiled call cannot be
stopped halfway, and an interrupt raised inside whatever Python code happens to run when
the call returns (a garbage-collection callback, say) is swallowed. The loop then writes a
checkpoint and stops (``interrupted`` in the summary), or, if that chunk was the last,
finishes the run. A second Ctrl-C stops at once; every file is written atomically, so even
then nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lopkit.engine import _checkpoint
from lopkit.engine._program import Program
from lopkit.results._store import RunWriter


def chunk_rows(
    program: Program,
    seeds: np.ndarray,
    first_bin: int,
    errors: np.ndarray,
    probes: np.ndarray,
    diverged_at: np.ndarray,
    error_name: str,
    columns: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Tidy rows of one chunk. errors ``[R, B]``, probes ``[R, B, R']`` (the stream's
    records, then the probes: :meth:`Program.run_bins`), diverged_at ``[R]``, for R runs:
    ``seeds`` ``[R]`` their seed ids, ``columns`` ``{name: [R]}`` further per-run columns
    (the swept settings), placed after ``seed``.

    Records get a row in every bin (NaN where the bin counted nothing, e.g. no episode
    ended); probes in the bins where they were taken. A run's values at and after the bin
    where its loss became non-finite are NaN (masked), and a ``diverged`` row (value 1)
    records the step at which that happened.
    """
    k, n_bins = errors.shape
    n_records = len(program.record_names)
    records, probes = probes[..., :n_records], probes[..., n_records:]
    ends = (first_bin + 1 + np.arange(n_bins, dtype=np.int64)) * program.bin_size
    starts = ends - program.bin_size
    masked = (diverged_at[:, None] >= 0) & (ends[None, :] > diverged_at[:, None])
    errors = np.where(masked, np.nan, errors)
    runs = np.arange(k)
    every_bin = np.repeat(runs, n_bins)
    frames = [
        pd.DataFrame(
            {
                "run": every_bin,
                "step": np.tile(ends, k),
                "metric": error_name,
                "layer": "",
                "value": errors.reshape(-1).astype(np.float64),
            }
        )
    ]
    for r, metric in enumerate(program.record_names):
        values = np.where(masked, np.nan, records[:, :, r]).astype(np.float64)
        frames.append(
            pd.DataFrame(
                {
                    "run": every_bin,
                    "step": np.tile(ends, k),
                    "metric": metric,
                    "layer": "",
                    "value": values.reshape(-1),
                }
            )
        )
    taken = ~np.all(np.isnan(probes), axis=(0, 2)) if probes.size else np.zeros(n_bins, bool)
    for b in np.flatnonzero(taken):
        for r, (metric, layer) in enumerate(program.labels):
            values = np.where(masked[:, b], np.nan, probes[:, b, r]).astype(np.float64)
            frames.append(
                pd.DataFrame(
                    {
                        "run": runs,
                        "step": ends[b],
                        "metric": metric,
                        "layer": layer,
                        "value": values,
                    }
                )
            )
    new = (diverged_at >= starts[0]) & (diverged_at < ends[-1])
    if new.any():
        frames.append(
            pd.DataFrame(
                {
                    "run": runs[new],
                    "step": diverged_at[new].astype(np.int64),
                    "metric": "diverged",
                    "layer": "",
                    "value": 1.0,
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    index = rows.pop("run").to_numpy()
    per_run = {"seed": np.asarray(seeds)[index]}
    per_run.update({name: np.asarray(v)[index] for name, v in (columns or {}).items()})
    for i, (name, values) in enumerate(per_run.items()):
        rows.insert(i, name, values)
    return rows


def next_chunk_bins(seconds_per_bin: float | None, target_seconds: float, remaining: int) -> int:
    """Bins in the next time-sized chunk.

    While the speed is unknown (``seconds_per_bin`` None): 1. Otherwise the largest power
    of two ``n`` with ``n · seconds_per_bin ≤ target_seconds`` (at least 1); powers of two
    keep the number of compiled chunk sizes small when the measured speed drifts. Never more
    than ``remaining``: the last chunk is the remainder.
    """
    if seconds_per_bin is None:
        return min(1, remaining)
    fit = target_seconds / max(seconds_per_bin, 1e-12)
    n = 1 << max(0, int(fit).bit_length() - 1) if fit >= 1 else 1
    return max(1, min(n, remaining))


@contextlib.contextmanager
def deferred_interrupts(say: Callable[[str], None]) -> Iterator[dict[str, bool]]:
    """While active, a first SIGINT only sets ``flag["interrupted"]`` (and says so); a second
    raises KeyboardInterrupt. Outside the main thread signals cannot be caught: no-op."""
    flag = {"interrupted": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["interrupted"]:
            raise KeyboardInterrupt
        flag["interrupted"] = True
        say("interrupted: stopping after the running chunk and writing a checkpoint "
            "(Ctrl-C again to stop at once)")  # fmt: skip

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _stderr(message: str) -> None:
    print(f"lopkit: {message}", file=sys.stderr, flush=True)


def execute(
    program: Program,
    seeds: np.ndarray,
    total_bins: int,
    run_dir: str | Path,
    chunk_bins: int = 0,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
    error_name: str = "mse",
    stop_after_chunks: int | None = None,
    checkpoint_seconds: float = 60.0,
    clock: Callable[[], float] = time.perf_counter,
    log: Callable[[str], None] | None = _stderr,
    settings: dict[str, np.ndarray] | None = None,
    columns: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``total_bins`` bins for ``seeds``, writing parts and checkpoints.

    ``seeds`` ``[R]`` are the seed ids of the R runs; ``settings`` ``{name: [R]}`` each
    run's own settings, for a program with ``configure`` (given to it as one pytree, and
    recorded as columns of the metrics table: ``columns``, default the settings, e.g. the
    values as given, where the settings are their float32 casts).

    ``chunk_bins`` 0 sizes chunks by time (:func:`next_chunk_bins`, ``checkpoint_seconds``
    measured with ``clock``); ``log`` receives what the user should know (where a resumed
    run continues; None: silent). ``stop_after_chunks`` ends the call early as an
    interruption would (for tests); the run is then finished by a later call with
    ``resume=True``. Returns a summary: seed-steps per second, wall time, bins run, whether
    finished or interrupted, the bins of each chunk, the final state.
    """
    say = log or (lambda message: None)
    settings = dict(settings or {})
    columns = settings if columns is None else dict(columns)
    writer = RunWriter(run_dir, settings=tuple(columns))
    seed_ids = jnp.asarray(seeds, jnp.int32)
    state = program.init(seed_ids, {n: jnp.asarray(v) for n, v in settings.items()} or None)
    next_bin = 0
    total_steps = total_bins * program.bin_size
    if resume:
        if _checkpoint.checkpoint_path(run_dir).exists():
            state, next_bin = _checkpoint.load(run_dir, state)
            state = program.place(state)
            say(f"resuming {run_dir} from step {next_bin * program.bin_size:,} of {total_steps:,}")
        else:
            say(f"no checkpoint in {run_dir}: starting over from step 0")
    writer.discard_parts_after(next_bin - 1)
    k = len(seeds)
    bar = tqdm(
        total=total_steps * k,
        initial=next_bin * program.bin_size * k,
        unit=program.stream.step_unit,
        unit_scale=True,
        disable=not progress,
        desc=Path(run_dir).name,
        leave=False,
    )
    start_time, chunks_done, run_bins = clock(), 0, 0
    sizes: list[int] = []
    compiled: set[int] = set()
    seconds_per_bin: float | None = None
    interrupted = False
    with deferred_interrupts(say) as flag:
        while next_bin < total_bins:
            remaining = total_bins - next_bin
            if chunk_bins:
                n = min(chunk_bins, remaining)
            else:
                n = next_chunk_bins(seconds_per_bin, checkpoint_seconds, remaining)
            began = clock()
            state, errors, probes = program.chunk(state, jnp.asarray(next_bin, jnp.int32), n)
            errors, probes, diverged = jax.device_get((errors, probes, state["diverged_at"]))
            if n in compiled:  # a first call of a size includes its compilation
                seconds_per_bin = (clock() - began) / n
            compiled.add(n)
            writer.append(
                next_bin,
                chunk_rows(
                    program,
                    np.asarray(seeds),
                    next_bin,
                    errors,
                    probes,
                    diverged,
                    error_name,
                    columns,
                ),
            )
            next_bin += n
            run_bins += n
            chunks_done += 1
            sizes.append(n)
            bar.update(n * program.bin_size * k)
            stopping = flag["interrupted"] or (
                stop_after_chunks is not None and chunks_done >= stop_after_chunks
            )
            if chunks_done % checkpoint_every == 0 or next_bin == total_bins or stopping:
                _checkpoint.save(run_dir, state, next_bin)
            if stopping and next_bin < total_bins:
                interrupted = flag["interrupted"]
                break
        bar.close()
        elapsed = clock() - start_time
        finished = next_bin >= total_bins
        if finished:
            writer.finalize()
    return {
        "finished": finished,
        "interrupted": interrupted,
        "seconds": elapsed,
        "bins_run": run_bins,
        "next_step": next_bin * program.bin_size,
        "chunks": sizes,
        "seed_steps_per_second": run_bins * program.bin_size * k / max(elapsed, 1e-9),
        "unit": program.stream.step_unit,
        "state": state,
    }
