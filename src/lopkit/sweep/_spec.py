"""A study spec (one YAML file) and its expansion into cells (docs/design.md §9).

A study is a grid over benchmark settings × methods × method settings, each *cell* run
with ``seeds`` seeds as one program::

    benchmark: scr            # or a list [scr, permuted], or settings per benchmark:
                              #   {scr: {}, permuted: {data: digits}}
    preset: quick             # optional: a preset of the benchmark (lopkit run --preset)
    seeds: 30                 # run settings: seeds, steps, and any under `run:`
    steps: 1000000
    run: {bin_size: 10000}
    settings: {lr: 0.01}      # shared settings, as for `lopkit run --set`
    grid:                     # conditions: every combination is run with every method
      activation: [relu, tanh]
    methods:                  # per method, its settings; a list is an axis tuned per method
      backprop: {}
      l2: {l2.weight_decay: [1e-3, 1e-2, 1e-1]}
      cbp: {cbp.replacement_rate: [1e-5, 1e-4, 1e-3]}

Precedence, lowest first: the preset, ``settings``, the benchmark's own settings, the
``grid`` values, the method's settings, then ``seeds``/``steps``/``run`` (as ``lopkit
run``'s flags override ``--set``).
In ``grid`` every value is a list; in a method's settings a list is an axis and a scalar a
fixed value (a setting that itself takes a list, e.g. ``hidden``, is written as a string
``"100,100"`` or as a one-element axis ``[[100, 100]]``).

Every cell is made with :func:`lopkit._experiment.make_experiment`, the function
``lopkit run`` uses, so a bad name or value gets the same message as on the command line,
for every cell, before anything runs. A cell's id is a hash of its resolved config
(every default written out), so it is stable across runs and key order, and two ways of
writing the same value (``1e-3``, ``0.001``) give the same cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import yaml

from lopkit import _config
from lopkit._errors import ConfigError, LopkitError
from lopkit._experiment import EXECUTION_ONLY, make_experiment
from lopkit.data._errors import DataError

SPEC_KEYS = ("name", "benchmark", "preset", "seeds", "steps", "run", "settings", "grid", "methods")
ID_LENGTH = 12


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A parsed study file; values are kept as written and validated by :func:`expand`."""

    benchmarks: tuple[str, ...]
    methods: dict[str, dict[str, Any]]
    benchmark_settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] = dataclasses.field(default_factory=dict)
    preset: str | None = None
    name: str | None = None

    @property
    def tuned_keys(self) -> list[str]:
        """Settings named in any method's settings (tuned per method), in spec order."""
        keys: dict[str, None] = {}
        for values in self.methods.values():
            keys.update(dict.fromkeys(values))
        return list(keys)

    @property
    def swept_keys(self) -> list[str]:
        """The columns a study's table gets: ``benchmark`` (when several), ``method``,
        the grid's keys (the conditions), then the methods' settings."""
        keys = ["benchmark"] if len(self.benchmarks) > 1 else []
        keys += ["method", *self.grid]
        return keys + [k for k in self.tuned_keys if k not in keys]

    @property
    def condition_keys(self) -> list[str]:
        """Keys that tell conditions apart (best settings are chosen within each)."""
        return (["benchmark"] if len(self.benchmarks) > 1 else []) + list(self.grid)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One static configuration of a study: one run directory, ``seeds`` seeds.

    ``settings`` and ``run`` are what :func:`make_experiment` is called with;
    ``swept`` maps every swept key to the cell's resolved value (None where the key does
    not apply, e.g. ``l2.weight_decay`` for a cell without l2); ``resolved`` is the run's
    config.yaml content.
    """

    id: str
    benchmark: str
    method: str
    settings: dict[str, Any]
    run: dict[str, Any]
    swept: dict[str, Any]
    resolved: dict[str, Any]

    @property
    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.swept.items() if k != "method" and v is not None]
        return " · ".join([self.method, *parts])

    def to_json(self) -> dict[str, Any]:
        """What a worker needs to make the experiment again (plus what a report shows)."""
        return {
            "id": self.id,
            "benchmark": self.benchmark,
            "method": self.method,
            "settings": self.settings,
            "run": self.run,
            "swept": self.swept,
            "label": self.label,
        }


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be setting names, got {key!r}")
    return dict(value)


def parse_spec(data: Any, where: str = "study") -> StudySpec:
    """Check the shape of a study mapping (see the module docstring); values are left to
    :func:`expand`. Raises ConfigError naming an unknown key with the valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(SPEC_KEYS)}")
    for key in data:
        if key not in SPEC_KEYS:
            raise _config.unknown_name(f"key of {where}", str(key), SPEC_KEYS)
    if "benchmark" not in data:
        raise ConfigError(f"{where} needs a benchmark (e.g. `benchmark: scr`)")
    benchmarks = data["benchmark"]
    benchmarks = [benchmarks] if isinstance(benchmarks, str) else benchmarks
    own: dict[str, dict[str, Any]] = {}
    if isinstance(benchmarks, dict):
        own = {str(b): _mapping(f"{where}: benchmark.{b}", v) for b, v in benchmarks.items()}
        benchmarks = list(own)
    if not isinstance(benchmarks, list) or not benchmarks:
        raise ConfigError(
            f"{where}: benchmark must be a name, a list of names or a mapping of names to settings"
        )
    if len(set(benchmarks)) != len(benchmarks):
        raise ConfigError(f"{where}: benchmark names a benchmark twice")
    grid = _mapping(f"{where}: grid", data.get("grid"))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid.{key} must be a non-empty list, got {values!r}")
    methods = data.get("methods", {"backprop": {}})
    if isinstance(methods, list):
        methods = {m: {} for m in methods}
    methods = _mapping(f"{where}: methods", methods)
    if not methods:
        raise ConfigError(f"{where}: methods is empty; e.g. `methods: {{backprop: {{}}}}`")
    methods = {str(m): _mapping(f"{where}: methods.{m}", v) for m, v in methods.items()}
    for method, values in methods.items():
        for key, value in values.items():
            if key in grid:
                raise ConfigError(f"{where}: {key} is both in grid and in methods.{method}")
            if isinstance(value, list) and not value:
                raise ConfigError(f"{where}: methods.{method}.{key} is an empty list")
    run = _mapping(f"{where}: run", data.get("run"))
    for key in ("seeds", "steps"):
        if key in data:
            if key in run:
                raise ConfigError(f"{where}: {key} is given twice (top level and run)")
            run[key] = data[key]
    preset = data.get("preset")
    return StudySpec(
        benchmarks=tuple(str(b) for b in benchmarks),
        methods=methods,
        benchmark_settings=own,
        grid=grid,
        settings=_mapping(f"{where}: settings", data.get("settings")),
        run=run,
        preset=None if preset is None else str(preset),
        name=None if data.get("name") is None else str(data["name"]),
    )


def load_spec(path: str | Path) -> StudySpec:
    """Read and parse a study file. Raises LopkitError when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise LopkitError(f"study file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"study file {path} is not valid YAML: {err}") from None
    return parse_spec(data, where=f"study {path}")


def cell_id(resolved: dict[str, Any]) -> str:
    """A hash of a resolved config: the first 12 hex digits of SHA-256 over its JSON with
    sorted keys. Settings that only change how a run executes (``chunk_bins``,
    ``checkpoint_every``, ``checkpoint_seconds``) are left out, so changing them keeps the
    cell."""
    run = {k: v for k, v in resolved.get("run", {}).items() if k not in EXECUTION_ONLY}
    text = json.dumps({**resolved, "run": run}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def resolved_value(resolved: dict[str, Any], key: str) -> Any:
    """The value of a ``--set``-style key in a resolved config; None if it does not apply
    (a remedy setting of a remedy the cell's method lacks). Lists come back as tuples."""
    if key == "method":
        return resolved["method"]
    if key == "benchmark":
        return resolved["benchmark"]
    owner = _config.remedy_key(key)
    if owner is not None:
        value = resolved["remedies"].get(owner[0], {}).get(owner[1])
    elif key in resolved["benchmark_config"]:
        value = resolved["benchmark_config"][key]
    else:
        value = resolved["run"].get(key)
    return tuple(value) if isinstance(value, list) else value


def _axes(values: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[list[Any]]]:
    fixed = {k: v for k, v in values.items() if not isinstance(v, list)}
    axes = [k for k, v in values.items() if isinstance(v, list)]
    return fixed, axes, [values[k] for k in axes]


def _cell_settings(spec: StudySpec, benchmark: str, method: str) -> dict[str, Any]:
    if spec.preset is None:
        return {}
    from lopkit.experiments import load_preset, preset_settings
    from lopkit.methods import parse_method

    return preset_settings(load_preset(benchmark, spec.preset), parse_method(method))


def expand(spec: StudySpec) -> list[Cell]:
    """Every cell of ``spec``, each validated as ``lopkit run`` validates a run.

    Order: benchmark, then grid combinations (first key slowest), then methods in spec
    order, then each method's axes. Raises ConfigError listing every distinct invalid
    cell (with ``lopkit run``'s message) and when two cells resolve to the same config.
    """
    cells: dict[str, Cell] = {}
    errors: dict[str, str] = {}
    swept_keys = spec.swept_keys
    for benchmark in spec.benchmarks:
        for grid_values in itertools.product(*spec.grid.values()):
            condition = dict(zip(spec.grid, grid_values, strict=True))
            for method, values in spec.methods.items():
                fixed, axes, axis_values = _axes(values)
                for combo in itertools.product(*axis_values):
                    tuned = dict(zip(axes, combo, strict=True))
                    where = " · ".join(
                        [
                            benchmark,
                            method,
                            *(f"{k}={v}" for k, v in {**condition, **tuned}.items()),
                        ]
                    )
                    try:
                        settings = {
                            **_cell_settings(spec, benchmark, method),
                            **spec.settings,
                            **spec.benchmark_settings.get(benchmark, {}),
                            **condition,
                            **fixed,
                            **tuned,
                        }
                        experiment = make_experiment(benchmark, method, settings, **spec.run)
                    except (LopkitError, DataError) as err:  # as `lopkit run` reports them
                        errors.setdefault(str(err), where)
                        continue
                    resolved = experiment.resolved()
                    cell = Cell(
                        id=cell_id(resolved),
                        benchmark=benchmark,
                        method=experiment.method,
                        settings=settings,
                        run=dict(spec.run),
                        swept={k: resolved_value(resolved, k) for k in swept_keys},
                        resolved=resolved,
                    )
                    if cell.id in cells:
                        raise ConfigError(
                            f"cells {cells[cell.id].label!r} and {where!r} resolve to the same "
                            "configuration; remove one of them"
                        )
                    cells[cell.id] = cell
    if errors:
        lines = [f"  cell {where}: {message}" for message, where in list(errors.items())[:10]]
        more = f"\n  … and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise ConfigError("invalid cells in the study:\n" + "\n".join(lines) + more)
    return list(cells.values())
