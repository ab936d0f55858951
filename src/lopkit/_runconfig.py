"""A run's settings: how long, how many seeds, what to record, how to chunk — not what is
learned — and the bin size chosen when the user sets none."""

from __future__ import annotations

import dataclasses
from typing import Any

from lopkit import _config
from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.engine import _probes

CONFIG_VERSION = 1  # of config.yaml

@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How long, how many seeds, what to record, how to chunk (not what is learned)."""

    seeds: int = field(10, "number of independent seeds run as one program", positive=True)
    first_seed: int = field(
        0, "id of the first seed (seeds first_seed … first_seed+seeds−1)", nonnegative=True
    )
    base_seed: int = field(0, "root of every seed's randomness", nonnegative=True)
    steps: int = field(100_000, "steps per seed (a multiple of bin_size)", positive=True)
    bin_size: int = field(10_000, "steps per reported error bin", positive=True)
    block_size: int = field(
        0, "steps generated at once (divides bin_size; 0: auto, ≤ 1000)", nonnegative=True
    )
    metrics: tuple[str, ...] = field(
        _probes.DEFAULT_PROBES, "probes recorded on the probe batch", may_be_empty=True
    )
    metrics_every: int = field(
        10_000, "steps between probe snapshots (a multiple of bin_size; 0: none)", nonnegative=True
    )
    probe_size: int = field(2_000, "examples in the probe batch", positive=True)
    chunk_bins: int = field(
        0,
        "bins per compiled call (0: by time, a chunk about every checkpoint_seconds)",
        nonnegative=True,
    )
    checkpoint_every: int = field(1, "chunks between checkpoints", positive=True)
    checkpoint_seconds: float = field(
        60.0,
        "with chunk_bins 0: seconds of work per chunk, so about this often a checkpoint "
        "(the first after one bin)",
        positive=True,
    )
    vectorize: str = field(
        "values",
        "settings given as lists: values (every value × seed in one program) or none "
        "(one program per value, run one after another; the same results)",
        choices=("values", "none"),
    )

    def check(self) -> None:
        _probes.resolve(self.metrics)  # unknown names first, then the arithmetic
        if self.steps % self.bin_size:
            raise ConfigError(
                f"steps ({self.steps}) must be a multiple of bin_size ({self.bin_size})"
            )
        if self.block_size and self.bin_size % self.block_size:
            raise ConfigError(
                f"block_size ({self.block_size}) must divide bin_size ({self.bin_size})"
            )
        if self.metrics_every % self.bin_size:
            raise ConfigError(
                f"metrics_every ({self.metrics_every}) must be a multiple of "
                f"bin_size ({self.bin_size})"
            )

    def resolved(self) -> RunConfig:
        """Autos filled in: block_size, canonical metric names (chunk_bins 0 stays: by time)."""
        block = self.block_size or max(
            d for d in range(1, min(self.bin_size, 1000) + 1) if self.bin_size % d == 0
        )
        metrics = _probes.resolve(self.metrics)
        return dataclasses.replace(self, block_size=block, metrics=metrics)


RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
# Settings that change how a run is executed but not what any seed computes.
EXECUTION_ONLY = {"chunk_bins", "checkpoint_every", "checkpoint_seconds"}


def fitting_bin_size(steps: int, suggested: int, block: int = 0) -> int | None:
    """The bin size for a run of ``steps`` when the user set none: the benchmark's
    ``suggested`` size if it divides ``steps``, else the largest divisor of ``steps`` that
    is at most ``suggested`` (``steps`` itself when it is shorter: one bin) and a multiple
    of ``block`` (a fixed block size, e.g. one rollout; 0: any). None if there is none
    (``steps`` not a multiple of ``block``)."""
    unit = block or 1
    if steps % unit:
        return None
    if steps <= suggested:
        return steps
    return next((d for d in range(suggested, 0, -1) if steps % d == 0 and d % unit == 0), None)


def fit_bins(values: dict[str, Any], explicit: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with bin_size (and metrics_every) fitted to steps where the user set no
    bin size; returns the new values and a note per changed setting (for config.yaml)."""
    steps = _config.coerce(RunConfig, "steps", values.get("steps", RunConfig.steps))
    suggested = _config.coerce(RunConfig, "bin_size", values.get("bin_size", RunConfig.bin_size))
    if "bin_size" in explicit or steps % suggested == 0:
        return values, {}
    block = _config.coerce(RunConfig, "block_size", values.get("block_size", 0))
    bin_size = fitting_bin_size(steps, suggested, block)
    if bin_size is None:  # no bin size fits: the run's own check says why
        return values, {}
    notes = {
        "bin_size": f"{bin_size}: chosen because steps ({steps}) is not a multiple of the "
        f"benchmark's bin size ({suggested}); set bin_size to choose another"
    }
    values = {**values, "bin_size": bin_size}
    every = _config.coerce(
        RunConfig, "metrics_every", values.get("metrics_every", RunConfig.metrics_every)
    )
    if "metrics_every" not in explicit and every and (every % bin_size or every > steps):
        fitted = min(steps, max(bin_size, every // bin_size * bin_size))
        values["metrics_every"] = fitted
        notes["metrics_every"] = (
            f"{fitted}: the multiple of bin_size nearest {every}, at most steps"
        )
    return values, notes
