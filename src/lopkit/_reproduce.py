"""``lopkit reproduce``: every published figure and results table from a checked-in file.

A *figure file* (``figures/<name>.yaml`` in the repository) says which runs a result
needs — a benchmark, a preset or settings, the methods, seeds and steps — which figures to
draw from them and which table to compute, and where in the docs they go::

    title: Online permuted digits, quick preset
    benchmark: permuted
    preset: quick                # optional: a preset of the benchmark
    settings: {}                 # optional: --set-style settings over the preset
    run: {seeds: 10}             # optional: run settings (seeds, steps, metrics, …)
    methods: [backprop, cbp]     # or runs: a list of {name, method, settings} variants
    figures:
      - {out: docs/permuted_quick.png, metric: accuracy, label_key: method}
      - {out: docs/demo.png, panels: [[mse, ""], [dead_fraction, ""]]}   # a row of panels
    table:
      fraction: 0.1              # early = first 10% of the steps, late = last 10%
      columns:
        - {metric: accuracy, label: online accuracy}
        - {metric: dead_fraction, label: dead units, percent: true}
    blocks: [README.md, docs/benchmarks.md]

:func:`reproduce` runs what is missing (a finished run with the same configuration is
reused, an interrupted one resumed, one with other settings replaced, saying so), draws the
figures and rewrites each block — the lines between ``<!-- lopkit:begin NAME -->`` and
``<!-- lopkit:end NAME -->`` in every file of ``blocks`` — with the table, the figure(s)
and a caption naming the benchmark, preset, seeds, the statistic and the command. Only
those lines change, so ``git diff`` shows what moved.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lopkit._config import unknown_name
from lopkit._errors import ConfigError

FIELDS = (
    "title",
    "benchmark",
    "preset",
    "settings",
    "run",
    "methods",
    "runs",
    "figures",
    "table",
    "blocks",
)
REQUIRED = ("benchmark", "blocks")


@dataclasses.dataclass(frozen=True)
class Figure:
    """One image: a single metric (``metric``/``layer``; by default the runs' reported
    metric) or a row of ``panels``."""

    out: str
    metric: str | None = None
    layer: str = ""
    panels: tuple[tuple[str, str], ...] = ()
    label_key: str | None = "method"
    runs: tuple[str, ...] = ()  # a subset of the spec's runs, by name (default: all)
    title: str | None = None
    x: str | None = None
    bin_tasks: int | None = None


@dataclasses.dataclass(frozen=True)
class Variant:
    """One run of a figure file: its name (its directory and table row), its method and
    the settings it adds to the file's own."""

    name: str
    method: str = "backprop"
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Column:
    """A table column: ``metric`` at ``layer``, early → late, mean ± standard error."""

    metric: str
    label: str = ""
    layer: str = ""
    percent: bool = False
    digits: int = 3


@dataclasses.dataclass(frozen=True)
class Spec:
    """A figure file, validated."""

    name: str
    path: Path
    benchmark: str
    variants: tuple[Variant, ...]
    blocks: tuple[str, ...]
    title: str = ""
    preset: str | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] = dataclasses.field(default_factory=dict)
    figures: tuple[Figure, ...] = ()
    columns: tuple[Column, ...] = ()
    fraction: float = 0.1


def _build(cls: type, value: Any, where: str):
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {value!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key not in names:
            raise unknown_name(f"key of {where}", key, names)
    try:
        return cls(**value)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a figure file (a ConfigError says what is wrong and where)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no figure file {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of {', '.join(FIELDS)}")
    for key in raw:
        if key not in FIELDS:
            raise unknown_name(f"key of {path}", key, FIELDS)
    missing = [k for k in REQUIRED if not raw.get(k)]
    if bool(raw.get("methods")) == bool(raw.get("runs")):
        missing.append("methods or runs (one of them)")
    if missing:
        raise ConfigError(f"{path} needs {', '.join(missing)}")
    if raw.get("methods"):
        variants = tuple(Variant(str(m), str(m)) for m in raw["methods"])
    else:
        variants = tuple(
            _build(Variant, v, f"runs[{i}] of {path}") for i, v in enumerate(raw["runs"])
        )
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: run names repeat: {names}")
    figures = []
    for i, f in enumerate(raw.get("figures") or []):
        fig = _build(Figure, f, f"figures[{i}] of {path}")
        panels = tuple((str(p[0]), str(p[1]) if len(p) > 1 else "") for p in fig.panels)
        if panels and fig.metric is not None:
            raise ConfigError(f"figures[{i}] of {path}: give metric or panels, not both")
        for name in fig.runs:
            if name not in names:
                raise unknown_name(f"run of figures[{i}] of {path}", name, names)
        figures.append(dataclasses.replace(fig, panels=panels, runs=tuple(fig.runs)))
    table = raw.get("table") or {}
    columns = tuple(
        _build(Column, c, f"table.columns[{i}] of {path}")
        for i, c in enumerate(table.get("columns") or [])
    )
    return Spec(
        name=path.stem,
        path=path,
        benchmark=str(raw["benchmark"]),
        variants=variants,
        blocks=tuple(str(b) for b in raw["blocks"]),
        title=str(raw.get("title") or ""),
        preset=raw.get("preset"),
        settings=dict(raw.get("settings") or {}),
        run=dict(raw.get("run") or {}),
        figures=tuple(figures),
        columns=columns,
        fraction=float(table.get("fraction", 0.1)),
    )


def find_specs(directory: str | Path) -> dict[str, Path]:
    """The figure files of ``directory``, by name."""
    return {p.stem: p for p in sorted(Path(directory).glob("*.yaml"))}


def experiment_of(spec: Spec, variant: Variant):
    """The experiment of one run, built as ``lopkit run`` builds it."""
    from lopkit._experiment import make_experiment
    from lopkit.benchmarks import get_benchmark
    from lopkit.experiments import load_preset, preset_settings
    from lopkit.methods import parse_method

    get_benchmark(spec.benchmark)
    method = variant.method
    settings: dict[str, Any] = {}
    if spec.preset:
        preset = load_preset(spec.benchmark, spec.preset)
        settings.update(preset_settings(preset, parse_method(method)))
    settings.update(spec.settings)
    settings.update(variant.settings)
    run = dict(spec.run)
    if "metrics" in run:
        run["metrics"] = tuple(run["metrics"])
    return make_experiment(spec.benchmark, method, settings, **run)


def command(spec: Spec) -> str:
    return f"lopkit reproduce {spec.name}"


def _cell(row: Any, column: Column) -> str:
    scale, unit = (100.0, "%") if column.percent else (1.0, "")
    d = 1 if column.percent else column.digits

    def one(mean: float, se: float) -> str:
        if se != se:  # fewer than two seeds: no standard error
            return f"{scale * mean:.{d}f}{unit}"
        return f"{scale * mean:.{d}f}{unit} ± {scale * se:.{d}f}{unit}"

    return f"{one(row.early, row.early_se)} → {one(row.late, row.late_se)}"


def table_markdown(spec: Spec, dirs: dict[str, Path]) -> str:
    """The block's table: a row per method, a column per metric, early → late."""
    from lopkit.results import early_late, load_many

    df = load_many(list(dirs.values()))
    first = "method" if all(v.name == v.method for v in spec.variants) else "run"
    labels = [c.label or (c.metric + (f" ({c.layer})" if c.layer else "")) for c in spec.columns]
    header = [first, *labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    tables = [early_late(df, c.metric, c.layer, fraction=spec.fraction) for c in spec.columns]
    for name, run_dir in dirs.items():
        cells = [f"`{name}`"]
        for column, t in zip(spec.columns, tables, strict=True):
            rows = list(t[t["run"] == run_dir.name].itertuples())
            cells.append(_cell(rows[0], column) if rows else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def caption(spec: Spec, dirs: dict[str, Path]) -> str:
    """What the block shows, and the command that made it."""
    from lopkit.results import read_config

    config = read_config(next(iter(dirs.values())))
    run = config.get("run", {})
    what = f"`{spec.benchmark}`" + (f", preset `{spec.preset}`" if spec.preset else "")
    steps = int(run.get("steps", 0))
    pct = f"{100 * spec.fraction:g}%"
    stat = (
        f"; table: mean ± standard error over seeds of each seed's average over the first and "
        f"the last {pct} of the run (early → late)"
        if spec.columns
        else ""
    )
    return (
        f"*{spec.title + ': ' if spec.title else ''}{what}, {run.get('seeds', '?')} seeds × "
        f"{steps:,} steps per method; figures: mean ± standard error over seeds{stat}. "
        f"Made by `{command(spec)}` from `figures/{spec.name}.yaml`.*"
    )


def block_text(spec: Spec, dirs: dict[str, Path], doc: Path, root: Path) -> str:
    """The generated lines of one block (image paths relative to the doc's folder)."""
    import os

    parts = [table_markdown(spec, dirs)] if spec.columns else []
    for fig in spec.figures:
        rel = os.path.relpath(root / fig.out, (root / doc).parent)
        alt = fig.metric or ", ".join(m for m, _ in fig.panels) or "reported metric"
        parts.append(f"![{spec.name}: {alt}]({Path(rel).as_posix()})")
    parts.append(caption(spec, dirs))
    return "\n\n".join(parts)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- lopkit:begin {name} -->", f"<!-- lopkit:end {name} -->"


def rewrite_block(path: Path, name: str, text: str) -> bool:
    """Put ``text`` between the ``name`` markers of ``path``; True when the file changed.

    A ConfigError when the markers are missing, repeated or out of order (nothing written)."""
    begin, end = _markers(name)
    source = path.read_text()
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    found = pattern.findall(source)
    if len(found) != 1 or source.count(begin) != 1 or source.count(end) != 1:
        raise ConfigError(
            f"{path} needs exactly one block '{begin}' … '{end}' (found "
            f"{source.count(begin)} begin and {source.count(end)} end markers)"
        )
    updated = pattern.sub(lambda _: f"{begin}\n{text}\n{end}", source)
    if updated == source:
        return False
    from lopkit.results._io import atomic_write_text

    atomic_write_text(path, updated)
    return True


def blocks_in(path: Path) -> list[str]:
    """The names of the generated blocks of a file, in order."""
    return re.findall(r"<!-- lopkit:begin (\S+) -->", path.read_text())


def reproduce(
    spec: Spec,
    root: str | Path = ".",
    runs: str | Path = "runs/reproduce",
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run what ``spec`` needs that is missing, draw its figures, rewrite its blocks.

    Runs go to ``runs/<spec>/<run name>``; figure and block paths are relative to ``root``
    (the repository). Returns ``{"runs": {method: dir}, "figures": [...], "changed": [...],
    "seconds": s}``."""
    from lopkit._running import run_or_reuse
    from lopkit.results import plot_grid, plot_runs

    root, start = Path(root), time.perf_counter()
    for doc in spec.blocks:  # every block must exist before anything runs
        if not (root / doc).is_file():
            raise ConfigError(f"{spec.path}: block file {doc} does not exist under {root}")
        if spec.name not in blocks_in(root / doc):
            begin, end = _markers(spec.name)
            raise ConfigError(f"{root / doc} has no block '{begin}' … '{end}'")
    dirs: dict[str, Path] = {}
    for variant in spec.variants:
        experiment = experiment_of(spec, variant)
        run_dir = Path(runs) / spec.name / variant.name.replace("+", "_")
        log(f"{spec.name}: {variant.name} → {run_dir}")
        run_or_reuse(experiment, run_dir, progress=progress, replace=True, log=log)
        dirs[variant.name] = run_dir
    figures = []
    for fig in spec.figures:
        out = root / fig.out
        chosen = [dirs[n] for n in fig.runs] if fig.runs else list(dirs.values())
        if fig.panels:
            plot_grid(chosen, list(fig.panels), out=out, label_key=fig.label_key, title=fig.title)
        else:
            plot_runs(
                chosen,
                title=fig.title,
                metric=fig.metric,
                layer=fig.layer,
                out=out,
                label_key=fig.label_key,
                x=fig.x,
                bin_tasks=fig.bin_tasks,
            )
        figures.append(out)
    changed = [
        doc
        for doc in spec.blocks
        if rewrite_block(root / doc, spec.name, block_text(spec, dirs, Path(doc), root))
    ]
    return {
        "runs": dirs,
        "figures": figures,
        "changed": changed,
        "seconds": time.perf_counter() - start,
    }
