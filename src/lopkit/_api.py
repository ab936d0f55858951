"""lopkit's public Python API: run an experiment, load a run, resume or re-run one.

``lopkit.run(...)`` is ``lopkit run`` as a function: it validates everything first, writes
the run directory of docs/design.md §10 and returns a :class:`Run`. A run directory's
``config.yaml`` holds every setting written out, so it is enough to resume a run
(:func:`resume`) or to run it again elsewhere (:func:`rerun`; ``lopkit run --config``).

Nothing here imports JAX until it runs something: :func:`configure_devices` first
(docs/design.md §7), then the engine.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lopkit import _devices
from lopkit._errors import ConfigError, LopkitError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from lopkit._experiment import Experiment

__all__ = ["Run", "configure_devices", "experiment_from_config", "rerun", "resume", "run"]


def configure_devices() -> None:
    """Set up JAX as lopkit runs it — one CPU device per core (``$LOPKIT_CPU_DEVICES``
    chooses) and XLA's CPU instruction set capped for bit-exact batching — for this whole
    process, your own JAX code included. lopkit calls it when it first runs something; call
    it yourself before any JAX code of yours if that code comes first (afterwards JAX's
    backend has started and nothing can change: lopkit then warns). docs/design.md §7."""
    _devices.configure()


@dataclasses.dataclass(frozen=True)
class Run:
    """A run directory: where it is, its settings, and (read when first asked) its metrics.

    ``config`` is ``config.yaml`` as a dict (benchmark, method, benchmark_config, remedies,
    run, and where settings were swept, axes); ``metrics`` the tidy table of
    :func:`lopkit.results.load` (columns seed, [swept settings], step, metric, layer, value).
    """

    dir: Path
    config: dict[str, Any]

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Run:
        """The run in ``run_dir`` (a ResultsError if it holds none)."""
        from lopkit.results import read_config

        run_dir = Path(run_dir)
        return cls(run_dir, read_config(run_dir))

    @property
    def benchmark(self) -> str:
        return self.config["benchmark"]

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def seeds(self) -> int:
        return int(self.config["run"]["seeds"])

    @property
    def steps(self) -> int:
        return int(self.config["run"]["steps"])

    @property
    def metric(self) -> str | None:
        """The benchmark's reported metric (e.g. ``mse``, ``accuracy``, ``return``)."""
        return self.config.get("report", {}).get("metric")

    @property
    def finished(self) -> bool:
        """Whether the run has finished (its metrics.parquet is written)."""
        return (self.dir / "metrics.parquet").exists()

    @functools.cached_property
    def metrics(self) -> pd.DataFrame:
        """The metrics table (read once; of a run in progress, its finished chunks)."""
        from lopkit.results import load

        return load(self.dir)

    def plot(self, metric: str | None = None, **options: Any) -> Figure:
        """:func:`lopkit.results.plot_runs` of this run; returns the Figure."""
        from lopkit.results import plot_runs

        return plot_runs([self.dir], metric=metric, **options)

    def __repr__(self) -> str:
        state = "finished" if self.finished else "not finished"
        return (
            f"Run({str(self.dir)!r}: {self.benchmark} with {self.method}, {self.seeds} seeds × "
            f"{self.steps:,} steps, {state})"
        )


def _experiment(
    benchmark: str,
    method: str,
    settings: dict[str, Any] | None,
    preset: str | None,
    run: dict[str, Any],
) -> Experiment:
    configure_devices()
    from lopkit._experiment import make_experiment
    from lopkit.benchmarks import get_benchmark
    from lopkit.experiments import load_preset, preset_settings
    from lopkit.methods import parse_method

    merged: dict[str, Any] = {}
    if preset:  # the preset first: settings and run settings override it
        get_benchmark(benchmark)  # an unknown benchmark is named as such
        merged.update(preset_settings(load_preset(benchmark, preset), parse_method(method)))
    merged.update(settings or {})
    return make_experiment(benchmark, method, merged, **run)


def run(
    benchmark: str,
    method: str = "backprop",
    settings: dict[str, Any] | None = None,
    *,
    preset: str | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **run_settings: Any,
) -> Run:
    """Run ``seeds`` seeds of ``benchmark`` with ``method`` into ``out``; the :class:`Run`.

    ``method``: remedies joined by ``+`` (``"cbp+l2"``). ``settings``: benchmark and remedy
    settings as in ``--set`` (``{"lr": 0.003, "cbp.replacement_rate": 1e-4}``; a continuous
    one may be a list, ``[1e-5, 1e-4]``, every value × seed one program). ``preset``: named
    settings (``"quick"``), which ``settings`` and the run settings override.
    ``run_settings``: any other run setting (``bin_size=``, ``metrics=("effective_rank",)``,
    ``first_seed=``…; ``lopkit list`` and docs/design.md §10). ``out`` defaults to
    ``runs/<benchmark>[-<preset>]-<method>``.

    A finished run in ``out`` with the same settings is returned as it is, an interrupted
    one is finished (from its last checkpoint); one with other settings is refused (a
    ConfigError listing them) unless ``overwrite``. Everything is validated before anything
    is written."""
    configure_devices()  # before anything of lopkit's imports JAX
    from lopkit._running import run_or_reuse

    given = {"seeds": seeds, "steps": steps, **run_settings}
    experiment = _experiment(
        benchmark, method, settings, preset, {k: v for k, v in given.items() if v is not None}
    )
    if out is None:
        out = f"runs/{benchmark}{f'-{preset}' if preset else ''}-{experiment.method}"
    run_or_reuse(experiment, out, progress=progress, replace=overwrite)
    return Run.load(out)


def experiment_from_config(
    config: dict[str, Any], settings: dict[str, Any] | None = None, **run: Any
) -> Experiment:
    """The experiment a ``config.yaml`` describes (``settings`` and ``run`` override its
    values, as ``--set`` and the run flags do): every setting given explicitly, the swept
    ones as their lists in the order of ``axes``."""
    from lopkit._runconfig import CONFIG_VERSION

    version = config.get("version")
    if version != CONFIG_VERSION:
        raise ConfigError(
            f"config.yaml version {version!r}: this lopkit reads version {CONFIG_VERSION}"
        )
    missing = [k for k in ("benchmark", "method", "benchmark_config", "remedies", "run") if k
               not in config]  # fmt: skip
    if missing:
        raise ConfigError(f"config.yaml lacks {', '.join(missing)}: is it a lopkit run's?")
    axes = list(config.get("axes", []))
    values: dict[str, Any] = dict(config["benchmark_config"])
    for remedy, fields in config["remedies"].items():
        values.update({f"{remedy}.{k}": v for k, v in (fields or {}).items()})
    ordered = {k: v for k, v in values.items() if k not in axes}
    ordered.update({k: values[k] for k in axes if k in values})
    overrides = dict(settings or {})
    for key in overrides:
        ordered.pop(key, None)  # an override of a swept setting takes its place in the order
    ordered.update(overrides)
    run_values = {k: v for k, v in config["run"].items() if k not in ("vectorize",) or axes}
    run_values.update({k: v for k, v in run.items() if v is not None})
    if "metrics" in run_values:
        run_values["metrics"] = tuple(run_values["metrics"])
    configure_devices()
    from lopkit._experiment import make_experiment

    experiment = make_experiment(config["benchmark"], config["method"], ordered, **run_values)
    chosen = config.get("chosen") or {}
    if chosen and not experiment.chosen and not overrides and not run:
        experiment = dataclasses.replace(experiment, chosen=tuple(sorted(chosen.items())))
    return experiment


def _config_file(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """A config.yaml (or the run directory holding one) and its contents."""
    import yaml

    path = Path(path)
    file = path / "config.yaml" if path.is_dir() else path
    if not file.is_file():
        raise LopkitError(f"{path} is not a run's config.yaml nor a run directory holding one")
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{file} is not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{file} does not hold a run's settings (a mapping)")
    return file, config


def resume(run_dir: str | os.PathLike, progress: bool = False) -> Run:
    """Continue the interrupted run in ``run_dir`` from its last checkpoint, with the
    settings of its config.yaml (a finished run is returned as it is). The result is the
    same, bit for bit, as the run uninterrupted (docs/design.md §4)."""
    configure_devices()
    from lopkit._running import run_experiment

    _, config = _config_file(run_dir)
    if not Path(run_dir).is_dir():
        raise LopkitError(f"{run_dir} is not a run directory")
    experiment = experiment_from_config(config)
    run_experiment(experiment, run_dir, resume=True, progress=progress)
    return Run.load(run_dir)


def rerun(
    config: str | os.PathLike,
    out: str | os.PathLike,
    settings: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    **run_settings: Any,
) -> Run:
    """Run the experiment of a run's ``config`` (its config.yaml or its directory) again
    into ``out``, with ``settings`` and ``run_settings`` (``seeds=``, ``first_seed=``…)
    changed; ``out`` as in :func:`run`."""
    configure_devices()
    from lopkit._running import run_or_reuse

    file, values = _config_file(config)
    if Path(out).resolve() == file.parent.resolve():
        raise LopkitError(
            f"out is the run that config.yaml comes from ({file.parent}); to continue it, "
            "use resume (lopkit resume)"
        )
    experiment = experiment_from_config(values, settings, **run_settings)
    run_or_reuse(experiment, out, progress=progress, replace=overwrite)
    return Run.load(out)
