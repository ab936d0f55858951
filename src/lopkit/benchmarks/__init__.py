"""Benchmarks: continual problems with their learners, by name."""

from lopkit._config import unknown_name
from lopkit.benchmarks._ant import ANT
from lopkit.benchmarks._base import Benchmark, OptimizerConfig, Problem, make_optimizer
from lopkit.benchmarks._binary import BINARY
from lopkit.benchmarks._class_incremental import CLASS_INCREMENTAL
from lopkit.benchmarks._control import CONTROL
from lopkit.benchmarks._dmc import DMC
from lopkit.benchmarks._minatar import MINATAR
from lopkit.benchmarks._permuted import PERMUTED
from lopkit.benchmarks._relabeled import CHANGING_TARGETS, LABEL_PERMUTED, RANDOM_LABELS
from lopkit.benchmarks._scr import SCR, SCRConfig
from lopkit.benchmarks._warmstart import WARMSTART

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        SCR,
        PERMUTED,
        LABEL_PERMUTED,
        RANDOM_LABELS,
        CHANGING_TARGETS,
        BINARY,
        WARMSTART,
        CLASS_INCREMENTAL,
        CONTROL,
        MINATAR,
        ANT,
        DMC,
    )
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise unknown_name("benchmark", name, BENCHMARKS)
    return BENCHMARKS[name]


__all__ = [
    "BENCHMARKS",
    "SCR",
    "Benchmark",
    "OptimizerConfig",
    "Problem",
    "SCRConfig",
    "get_benchmark",
    "make_optimizer",
]
