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
        0,
        "steps generated at once (divides bin_size; 0: auto, the largest divisor ≤ 1000); "
        "the stream's data are drawn per block, so another block size is another run",
        nonnegative=True,
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
        steps, bin_size, block = self.steps, self.bin_size, self.block_size
        if steps % bin_size:
            raise ConfigError(
                f"steps ({steps:,}) must be a multiple of bin_size ({bin_size:,}); the nearest "
                f"that work: {_config.nearest_multiples(steps, bin_size)}"
            )
        if block and bin_size % block:
            raise ConfigError(
                f"block_size ({block:,}) must divide bin_size ({bin_size:,}): block_size "
                f"{_config.nearest_divisors(block, bin_size)}, or bin_size "
                f"{_config.nearest_multiples(bin_size, block)} (with steps a multiple of it)"
            )
        if self.metrics_every % bin_size:
            raise ConfigError(
                f"metrics_every ({self.metrics_every:,}) must be a multiple of bin_size "
                f"({bin_size:,}); the nearest that work: "
                f"{_config.nearest_multiples(self.metrics_every, bin_size)} (or 0: no probes)"
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


def _blocks_error(name: str, value: int, block: int, own: bool) -> ConfigError:
    """``name`` (steps or bin_size) is not a whole number of blocks: the nearest that are."""
    whose = "" if own else " (the benchmark's: the steps it generates at once, e.g. a rollout)"
    fitted = "; a bin size that fits is then chosen" if name == "steps" else ""
    return ConfigError(
        f"{name} ({value:,}) must be a multiple of block_size ({block:,}){whose}; the nearest "
        f"that work: {_config.nearest_multiples(value, block)}{fitted}"
    )


def fit_bins(values: dict[str, Any], explicit: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with bin_size (and metrics_every) fitted to steps where the user set no
    bin size; returns the new values and a note per changed setting (for config.yaml)."""
    steps = _config.coerce(RunConfig, "steps", values.get("steps", RunConfig.steps))
    suggested = _config.coerce(RunConfig, "bin_size", values.get("bin_size", RunConfig.bin_size))
    if "bin_size" in explicit and "block_size" not in explicit:
        block = _config.coerce(RunConfig, "block_size", values.get("block_size", 0))
        if block and suggested % block:  # the benchmark's block (e.g. one rollout)
            raise _blocks_error("bin_size", suggested, block, False)
    if "bin_size" in explicit:  # the benchmark's probe interval fitted to it, if need be
        return _fit_every(values, explicit, steps, suggested, {}, only_misfit=True)
    if steps % suggested == 0:
        return values, {}
    block = _config.coerce(RunConfig, "block_size", values.get("block_size", 0))
    bin_size = fitting_bin_size(steps, suggested, block)
    if bin_size is None:  # steps is not a whole number of blocks: no bin size fits
        raise _blocks_error("steps", steps, block, "block_size" in explicit)
    notes = {
        "bin_size": f"{bin_size}: chosen because steps ({steps}) is not a multiple of the "
        f"benchmark's bin size ({suggested}); set bin_size to choose another"
    }
    return _fit_every({**values, "bin_size": bin_size}, explicit, steps, bin_size, notes)


def _fit_every(
    values: dict[str, Any],
    explicit: set[str],
    steps: int,
    bin_size: int,
    notes: dict[str, str],
    only_misfit: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with metrics_every, unless the user set it, made a multiple of bin_size
    (and at most steps, unless ``only_misfit``: then only one that is no multiple)."""
    every = _config.coerce(
        RunConfig, "metrics_every", values.get("metrics_every", RunConfig.metrics_every)
    )
    misfit = every % bin_size or (every > steps and not only_misfit)
    if "metrics_every" not in explicit and every and misfit:
        fitted = min(steps, max(bin_size, every // bin_size * bin_size))
        values = {**values, "metrics_every": fitted}
        notes = {
            **notes,
            "metrics_every": f"{fitted}: the multiple of bin_size nearest {every}, at most steps",
        }
    return values, notes
