"""The host loop: run a program chunk by chunk, record, checkpoint, resume.

The host only loops over chunks; each chunk is one call of the compiled program. Between
chunks it converts the chunk's per-bin outputs into tidy rows (one part file per chunk),
updates the progress bar, and every ``checkpoint_every`` chunks writes the state. Results
are O(bins): nothing is kept per step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lopkit.engine import _checkpoint
from lopkit.engine._program import Program
from lopkit.results import RunWriter


def chunk_rows(
    program: Program,
    seeds: np.ndarray,
    first_bin: int,
    errors: np.ndarray,
    probes: np.ndarray,
    diverged_at: np.ndarray,
    error_name: str,
) -> pd.DataFrame:
    """Tidy rows of one chunk. errors ``[K, B]``, probes ``[K, B, R']`` (the stream's
    records, then the probes: :meth:`Program.run_bins`), diverged_at ``[K]``.

    Records get a row in every bin (NaN where the bin counted nothing, e.g. no episode
    ended); probes in the bins where they were taken. A seed's values at and after the bin
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
    frames = [
        pd.DataFrame(
            {
                "seed": np.repeat(seeds, n_bins),
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
                    "seed": np.repeat(seeds, n_bins),
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
                        "seed": seeds,
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
                    "seed": seeds[new],
                    "step": diverged_at[new].astype(np.int64),
                    "metric": "diverged",
                    "layer": "",
                    "value": 1.0,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def execute(
    program: Program,
    seeds: np.ndarray,
    total_bins: int,
    run_dir: str | Path,
    chunk_bins: int,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
    error_name: str = "mse",
    stop_after_chunks: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``total_bins`` bins for ``seeds``, writing parts and checkpoints.

    ``stop_after_chunks`` ends the call early as an interruption would (for tests); the
    run is then finished by a later call with ``resume=True``.
    Returns a summary: seed-steps per second, wall time, bins run, whether finished.
    """
    writer = RunWriter(run_dir)
    seed_ids = jnp.asarray(seeds, jnp.int32)
    state = program.init(seed_ids)
    next_bin = 0
    if resume and _checkpoint.checkpoint_path(run_dir).exists():
        state, next_bin = _checkpoint.load(run_dir, state)
    writer.discard_parts_after(next_bin - 1)
    k = len(seeds)
    bar = tqdm(
        total=total_bins * program.bin_size * k,
        initial=next_bin * program.bin_size * k,
        unit=getattr(program.stream, "step_unit", "seed-step"),
        unit_scale=True,
        disable=not progress,
        desc=Path(run_dir).name,
        leave=False,
    )
    start_time, chunks_done, run_bins = time.perf_counter(), 0, 0
    while next_bin < total_bins:
        n = min(chunk_bins, total_bins - next_bin)
        state, errors, probes = program.chunk(state, jnp.asarray(next_bin, jnp.int32), n)
        errors, probes, diverged = jax.device_get((errors, probes, state["diverged_at"]))
        writer.append(
            next_bin,
            chunk_rows(program, np.asarray(seeds), next_bin, errors, probes, diverged, error_name),
        )
        next_bin += n
        run_bins += n
        chunks_done += 1
        bar.update(n * program.bin_size * k)
        if chunks_done % checkpoint_every == 0 or next_bin == total_bins:
            _checkpoint.save(run_dir, state, next_bin)
        if (
            stop_after_chunks is not None
            and chunks_done >= stop_after_chunks
            and next_bin < total_bins
        ):
            break
    bar.close()
    elapsed = time.perf_counter() - start_time
    finished = next_bin >= total_bins
    if finished:
        writer.finalize()
    return {
        "finished": finished,
        "seconds": elapsed,
        "bins_run": run_bins,
        "seed_steps_per_second": run_bins * program.bin_size * k / max(elapsed, 1e-9),
        "unit": getattr(program.stream, "step_unit", "seed-step"),
        "state": state,
    }
