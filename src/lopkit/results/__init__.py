"""Results: the run store, loading into pandas, aggregation over seeds, plots.

A run lives in ``runs/<name>/`` (config.yaml, metrics.parquet or metrics/part-*.parquet
while it runs, checkpoint/, plots/); its metrics table is tidy, one row per
(seed, step, metric, layer) — see :mod:`lopkit.results._store` for the format.

The plotting functions import matplotlib on first use, so that the engine, which only
needs :class:`RunWriter`, does not pay for it.
"""

from ._aggregate import early_late, select, summarize, swept_columns
from ._io import atomic_write_bytes, atomic_write_parquet, atomic_write_text
from ._store import (
    COLUMNS,
    METRICS_SCHEMA,
    NoMetricsError,
    NotARunError,
    RunWriter,
    coerce_metrics,
    load,
    load_many,
    metrics_schema,
    read_config,
    write_config,
)
from ._study import NotAStudyError, load_study

_PLOT_NAMES = ("format_step", "plot_grid", "plot_runs")
_REPORT_NAMES = ("write_report",)

__all__ = [
    "COLUMNS",
    "METRICS_SCHEMA",
    "NoMetricsError",
    "NotARunError",
    "NotAStudyError",
    "RunWriter",
    "atomic_write_bytes",
    "atomic_write_parquet",
    "atomic_write_text",
    "coerce_metrics",
    "early_late",
    "format_step",
    "load",
    "load_many",
    "load_study",
    "metrics_schema",
    "plot_grid",
    "plot_runs",
    "read_config",
    "select",
    "summarize",
    "swept_columns",
    "write_config",
    "write_report",
]


def __getattr__(name: str):
    if name in _PLOT_NAMES:
        from . import _plot

        return getattr(_plot, name)
    if name in _REPORT_NAMES:
        from . import _report

        return getattr(_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
