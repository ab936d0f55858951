"""An experiment: a benchmark, a composed method and the run's settings, resolved and run.

``make_experiment("scr", "cbp+l2", {"lr": "0.003", "cbp.replacement_rate": "1e-4"},
seeds=30, steps=1_000_000)`` validates everything up front (unknown names and bad values
are errors before anything is written), and :func:`run_experiment` writes the run
directory of docs/design.md §10. The run's own settings live in :mod:`lopkit._runconfig`, its
directory in :mod:`lopkit._rundir`, running it (and its cells) in :mod:`lopkit._running`.

A continuous setting may be a list (``"cbp.replacement_rate": "1e-5,1e-4,1e-3"``;
:mod:`lopkit._axes`): the experiment then runs every grid point × every seed as one
program whose learner is built from each run's traced settings (``vectorize="values"``),
or each grid point as its own program (``vectorize="none"``), with the same results.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from lopkit import _axes, _config, _devices
from lopkit._errors import ConfigError
from lopkit._runconfig import (
    CONFIG_VERSION,
    EXECUTION_ONLY,
    RUN_FIELDS,
    RunConfig,
    fit_bins,
    fitting_bin_size,
)
from lopkit.benchmarks import get_benchmark, make_optimizer
from lopkit.benchmarks._base import Benchmark, Problem
from lopkit.engine import _probes
from lopkit.engine._learner import Learner
from lopkit.engine._program import Program
from lopkit.methods import REMEDIES, Context, compose, parse_method, remedy_configs
from lopkit.streams._base import Stream


@dataclasses.dataclass(frozen=True)
class Experiment:
    benchmark: Benchmark
    config: Any
    method_names: tuple[str, ...]
    remedy_configs: tuple[Any, ...]
    run: RunConfig
    chosen: tuple[tuple[str, str], ...] = ()  # run settings lopkit chose, with why
    report: tuple[tuple[str, Any], ...] = ()  # what the run reports (results._describe)
    # Swept settings ((name, values), …); config and remedy_configs hold the first values.
    axes: _axes.Axes = ()

    @property
    def method(self) -> str:
        return "+".join(self.method_names)

    @property
    def swept(self) -> tuple[str, ...]:
        """The names of the swept settings, in the order given."""
        return tuple(name for name, _ in self.axes)

    @property
    def traced(self) -> _axes.Axes:
        """Every setting the program reads as a traced per-run scalar, with its values: the
        swept settings, then every other continuous setting (``axis=True``: the benchmark's
        optimizer settings, the remedies' rates, thresholds, …) that is not zero.

        A plain run and the same values inside a grid therefore compile the same arithmetic:
        XLA folds a constant setting into the expressions around it (and may reorder them),
        which a traced one it cannot, so a run whose step size was a constant came out one
        rounding apart from the same run in a step-size grid. A setting that is 0 stays a
        constant: 0 means "off" (no momentum, no noise), the structure a program may skip,
        and a traced 0 in a grid adds and multiplies exactly what the skipped term would."""
        swept = set(self.swept)
        fixed: list[tuple[str, tuple[Any, ...]]] = []
        for f in dataclasses.fields(self.config):
            if f.name not in swept and _config.is_axis(type(self.config), f.name):
                fixed.append((f.name, (getattr(self.config, f.name),)))
        for name, c in zip(self.method_names, self.remedy_configs, strict=True):
            for f in dataclasses.fields(c):
                key = f"{name}.{f.name}"
                if key not in swept and _config.is_axis(type(c), f.name):
                    fixed.append((key, (getattr(c, f.name),)))
        return self.axes + tuple(
            (k, v) for k, v in fixed if isinstance(v[0], int | float) and v[0] != 0
        )

    def _defaults(self) -> dict[str, Any]:
        """One run's traced settings at the configured (first) values, typed as read."""
        dtypes = self._dtypes()
        return {k: np.asarray(v[0], dtypes[k]) for k, v in self.traced}

    def _learner(self, problem: Problem, settings: dict[str, Any]) -> Learner:
        """The learner with ``settings`` (``{name: value}``, values concrete or traced)
        in place of the configured values: benchmark settings are optimizer settings,
        ``remedy.key`` settings go to that remedy's config (its ceiling: the largest
        values of the axes)."""
        names = list(self.method_names)
        plain, remedy_values = _config.route(settings)
        optimizer = {**problem.optimizer, **plain}
        configs = tuple(
            dataclasses.replace(c, **remedy_values.get(n, {}))
            for n, c in zip(names, self.remedy_configs, strict=True)
        )
        tops = _config.route({key: max(values) for key, values in self.axes})[1]
        ceilings = tuple(  # concrete: every remedy setting at the largest value it takes
            dataclasses.replace(c, **tops.get(n, {}))
            for n, c in zip(names, self.remedy_configs, strict=True)
        )
        draft = problem.make_network(problem.network)
        method = compose(names, configs, Context(draft, optimizer["lr"]), ceilings)
        network = method.merged("architecture", problem.network)
        net = problem.make_network(network)
        optimizer = method.merged("optimizer", optimizer)
        method = compose(names, configs, Context(net, optimizer["lr"]), ceilings)
        wrapped = method.wrap_network(net)  # a network part (plasticity injection)
        if wrapped is not net:  # the remedies see the network the learner trains
            net = wrapped
            method = compose(names, configs, Context(net, optimizer["lr"]), ceilings)
        if hasattr(problem.protocol, "check"):  # a protocol that some methods cannot follow
            problem.protocol.check(method)
        base = (problem.optimizer_fn or make_optimizer)(optimizer)
        return Learner(
            net,
            problem.loss_fn,
            problem.error_fn,
            method,
            method.transformation(base),
            base,
            tuple(problem.boundary_events),
        )

    @property
    def identity(self) -> str:
        """What the program computes, as text: the resolved config without the settings
        that only change how it is executed (equal identities share one compilation)."""
        resolved = self.resolved()
        resolved["run"] = {
            k: v for k, v in resolved["run"].items() if k not in EXECUTION_ONLY | {"vectorize"}
        }
        return json.dumps(resolved, sort_keys=True, default=str)

    def build(self) -> tuple[Program, str]:
        """The compiled program and the name of the benchmark's error metric."""
        problem = self.benchmark.build(self.config)
        for key in self.swept:
            if "." not in key and key not in problem.optimizer:
                raise ConfigError(
                    f"{self.benchmark.name} does not read {key} as an optimizer setting, so "
                    f"it cannot take a list here; run one program per value with `lopkit sweep`"
                )
        for key, _ in self.traced:
            if key not in self.swept and "." not in key and key not in problem.optimizer:
                raise AssertionError(
                    f"{self.benchmark.name}'s continuous setting {key!r} is not an optimizer "
                    "setting: declare it axis=False or read it from the optimizer dict"
                )
        learner = self._learner(problem, {})
        _probes.check(self.run.metrics, learner, problem.stream)
        _check_stream_run(problem.stream, self.run)
        program = Program(
            stream=problem.stream,
            learner=learner,
            base_seed=self.run.base_seed,
            bin_size=self.run.bin_size,
            block_size=self.run.block_size,
            probes=self.run.metrics,
            probe_size=self.run.probe_size,
            metrics_every=self.run.metrics_every,
            seed_map=problem.seed_map,
            protocol=problem.protocol,
            configure=(lambda s: self._learner(problem, s)) if self.traced else None,
            settings=self._defaults() if self.traced else None,
            identity=self.identity,
        )
        return program, problem.error_name

    def resolved(self) -> dict[str, Any]:
        """Every setting written out (config.yaml); a swept setting as its list of values,
        and ``axes`` naming the swept settings in order."""
        bench = _config.to_dict(self.config)
        remedies = {
            n: _config.to_dict(c)
            for n, c in zip(self.method_names, self.remedy_configs, strict=True)
        }
        plain, swept = _config.route({key: list(values) for key, values in self.axes})
        bench.update(plain)
        for remedy, values in swept.items():
            remedies[remedy].update(values)
        run = _config.to_dict(self.run)
        if not self.axes:  # meaningless without lists (and runs made before it lack it)
            del run["vectorize"]
        return {
            "version": CONFIG_VERSION,
            "benchmark": self.benchmark.name,
            "method": self.method,
            "benchmark_config": bench,
            "remedies": remedies,
            "run": run,
            **({"axes": list(self.swept)} if self.axes else {}),
            **({"chosen": dict(self.chosen)} if self.chosen else {}),
            **({"report": dict(self.report)} if self.report else {}),
        }

    @property
    def seed_ids(self) -> np.ndarray:
        return np.arange(self.run.first_seed, self.run.first_seed + self.run.seeds, dtype=np.int32)

    def _dtypes(self) -> dict[str, type]:
        out = {}
        for key, _ in self.traced:
            owner = _config.remedy_key(key)
            if owner is None:
                out[key] = _axes.dtype_of(self.benchmark.config, key)
            else:
                out[key] = _axes.dtype_of(REMEDIES[owner[0]].config, owner[1])
        return out

    def runs(self, exact: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(seed ids ``[R]``, ``{setting: [R]}``) of the program's R runs: every grid point ×
        every seed (just the seeds when nothing is swept), with every traced setting
        (:attr:`traced`) typed as the program reads it (float32, int32); with ``exact``,
        just the swept settings as given, in float64 (the metrics table's columns)."""
        if exact:
            if not self.axes:
                return self.seed_ids, {}
            dtypes = {n: np.float64 for n in self.swept}
            return _axes.run_settings(self.axes, dtypes, self.seed_ids)
        if not self.traced:
            return self.seed_ids, {}
        return _axes.run_settings(self.traced, self._dtypes(), self.seed_ids)

    def cell(self, point: dict[str, Any]) -> Experiment:
        """The plain experiment of one grid point (its values concrete, nothing swept)."""
        bench, by_remedy = _config.route(point)
        configs = tuple(
            _config.validate(dataclasses.replace(c, **by_remedy.get(n, {})))
            for n, c in zip(self.method_names, self.remedy_configs, strict=True)
        )
        config = _config.validate(dataclasses.replace(self.config, **bench))
        run = dataclasses.replace(self.run, vectorize="values")
        return dataclasses.replace(self, config=config, remedy_configs=configs, run=run, axes=())


def _check_stream_run(stream: Stream, run: RunConfig) -> None:
    """A stream whose block has a fixed length (a rollout) or a bounded probe batch."""
    need = stream.block_steps
    if need and run.block_size != need:
        raise ConfigError(
            f"this benchmark's block is one rollout of {need} steps; block_size must be "
            f"{need} (got {run.block_size}), and bin_size and steps multiples of it"
        )
    most = stream.max_probe_size
    if most and run.probe_size > most:
        raise ConfigError(f"probe_size ({run.probe_size}) must be at most {most} here")


def split_settings(
    settings: dict[str, Any], benchmark_fields: set[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """Route ``--set`` keys: ``remedy.key`` → remedy, benchmark keys, run keys; else error."""
    plain, remedies = _config.route(settings)
    bench, run = {}, {}
    for key, value in plain.items():
        if key in benchmark_fields:
            bench[key] = value
        elif key in RUN_FIELDS:
            run[key] = value
        else:
            raise _config.unknown_name(
                "setting", key, sorted(benchmark_fields | RUN_FIELDS) + ["<remedy>.<setting>"]
            )
    return bench, remedies, run


def make_experiment(
    benchmark: str, method: str = "backprop", settings: dict[str, Any] | None = None, **run: Any
) -> Experiment:
    """Validate and resolve an experiment. ``run`` takes RunConfig fields (seeds=, steps=…).

    The first experiment of a process configures JAX for lopkit (docs/design.md §7)."""
    _devices.configure()
    bench = get_benchmark(benchmark)
    names = parse_method(method)
    fields = {f.name for f in dataclasses.fields(bench.config)}
    classes = {n: REMEDIES[n].config for n in names}
    scalars, axes = _axes.split_lists(dict(settings or {}), bench.config, classes, RunConfig)
    bench_settings, remedy_settings, run_settings = split_settings(scalars, fields)
    if bench.setting_defaults is not None:
        bench_settings = {**bench.setting_defaults(bench_settings), **bench_settings}
    config = _config.build(bench.config, bench_settings)
    configs = remedy_configs(names, remedy_settings, bench.remedy_defaults_for(names))
    given = {**run_settings, **{k: v for k, v in run.items() if v is not None}}
    _probes.resolve(_config.coerce(RunConfig, "metrics", given.get("metrics", RunConfig.metrics)))
    run_values, chosen = fit_bins({**bench.run_defaults_for(config), **given}, set(given))
    run_config = _config.build(RunConfig, run_values).resolved()
    experiment = Experiment(
        bench, config, tuple(names), configs, run_config, tuple(sorted(chosen.items())), axes=axes
    )
    for point in _axes.grid(axes)[1:]:  # every grid point is a valid configuration
        experiment.cell(point)
    program, error_name = experiment.build()  # refuse invalid combinations before writing
    return dataclasses.replace(experiment, report=report_of(program.stream, error_name))


def report_of(stream: Stream, error_name: str) -> tuple[tuple[str, Any], ...]:
    """config.yaml's ``report``: the reported metric, and the tasks of a task-based stream
    (``steps_per_task``, or ``task_starts`` when tasks differ in length)."""
    report: list[tuple[str, Any]] = [("metric", error_name)]
    per_task = stream.steps_per_task
    starts = stream.task_starts
    if isinstance(per_task, int | np.integer) and per_task > 0:
        report.append(("steps_per_task", int(per_task)))
    elif starts is not None:
        report.append(("task_starts", [int(t) for t in np.asarray(starts)]))
    return tuple(report)


# The run directory and running, in their own modules; named here too, where callers
# have always found them.
from lopkit._rundir import prepare_run_dir  # noqa: E402
from lopkit._running import run_experiment, run_or_reuse  # noqa: E402

__all__ = [
    "CONFIG_VERSION",
    "EXECUTION_ONLY",
    "RUN_FIELDS",
    "Experiment",
    "RunConfig",
    "fitting_bin_size",
    "make_experiment",
    "prepare_run_dir",
    "run_experiment",
    "run_or_reuse",
    "split_settings",
]
