"""Results: loading runs and studies into pandas, aggregating over seeds, plotting,
statistics and export — the analysis side of lopkit (docs/api.md).

A run lives in ``runs/<name>/`` (config.yaml, metrics.parquet or metrics/part-*.parquet
while it runs, checkpoint/, plots/); its metrics table is tidy, one row per
(seed, step, metric, layer) — see :mod:`lopkit.results._store` for the format. A study
(``lopkit sweep``) loads as one such table with a column per swept setting.

* loading: :func:`load`, :func:`load_many`, :func:`read_config`, :func:`load_study`;
* aggregates over seeds: :func:`select`, :func:`summarize`, :func:`early_late`,
  :func:`swept_columns`; the report of a study: :func:`write_report`;
* figures: :func:`plot_runs` (returns the Figure; ``ax=`` draws on yours), :func:`plot_grid`,
  :func:`format_step`;
* statistics of Agarwal et al. (2021) through ``rliable`` (:mod:`lopkit.results._rl_stats`):
  :func:`final_scores`, :func:`aggregate_scores`, :func:`probability_of_improvement`,
  :func:`performance_profile`; loss of plasticity per task: :func:`task_end_scores`;
* export: :func:`export_tensorboard`, :func:`export_wandb` (W&B offline runs).

What writes a run (the engine's writer, config.yaml, atomic writes) is private:
``lopkit.results._store`` and ``lopkit.results._io``. The plotting, report, statistics and
export functions import matplotlib, jinja2, rliable, tensorboardX or wandb on first use, so that
the engine does not pay for them.
"""

from ._aggregate import early_late, select, summarize, swept_columns
from ._store import COLUMNS, NoMetricsError, NotARunError, load, load_many, read_config
from ._study import NotAStudyError, load_study

_LAZY = {
    "format_step": "_plot",
    "plot_grid": "_plot",
    "plot_runs": "_plot",
    "write_report": "_report",
    "aggregate_scores": "_rl_stats",
    "final_scores": "_rl_stats",
    "performance_profile": "_rl_stats",
    "probability_of_improvement": "_rl_stats",
    "task_end_scores": "_rl_stats",
    "export_tensorboard": "_export",
    "export_wandb": "_export",
}

__all__ = [
    "COLUMNS",
    "NoMetricsError",
    "NotARunError",
    "NotAStudyError",
    "aggregate_scores",
    "early_late",
    "export_tensorboard",
    "export_wandb",
    "final_scores",
    "format_step",
    "load",
    "load_many",
    "load_study",
    "performance_profile",
    "plot_grid",
    "plot_runs",
    "probability_of_improvement",
    "read_config",
    "select",
    "summarize",
    "swept_columns",
    "task_end_scores",
    "write_report",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
