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

A figure file can instead name a *study* (docs/studies.md): its cells are run with
``lopkit sweep`` (finished cells skipped, interrupted ones resumed), ``lopkit report``
writes the full page, and the block gets a ranking: each method's best cell (by its
stream average, chosen on ``report.select_seeds`` when given) with its setting, stream
average and final value, and the ``table`` columns' late values for that cell::

    study: studies/remedies_scr.yaml
    report: {select_seeds: 0-9}  # optional: choose on these seeds, report the others
    table: {columns: [{metric: dead_fraction, percent: true}]}
    figures: [{out: docs/remedies_scr.png, runs: [backprop, cbp]}]   # runs = methods
    blocks: [docs/remedies.md]

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
    "study",
    "report",
)
REQUIRED = ("blocks",)
REPORT_KEYS = ("select_seeds", "ci", "jobs")


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
    study: str | None = None  # a study file (relative to the repository) instead of runs
    report: dict[str, Any] = dataclasses.field(default_factory=dict)
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
    study = raw.get("study")
    if study is not None:
        extra = [
            k for k in ("benchmark", "preset", "settings", "run", "methods", "runs") if k in raw
        ]
        if extra:
            raise ConfigError(
                f"{path}: a study figure file takes its runs from the study file; "
                f"remove {', '.join(extra)}"
            )
    else:
        if not raw.get("benchmark"):
            missing.append("benchmark (or study)")
        if bool(raw.get("methods")) == bool(raw.get("runs")):
            missing.append("methods or runs (one of them)")
    if missing:
        raise ConfigError(f"{path} needs {', '.join(missing)}")
    report = raw.get("report") or {}
    if not isinstance(report, dict):
        raise ConfigError(f"report of {path} must be a mapping, got {report!r}")
    for key in report:
        if key not in REPORT_KEYS:
            raise unknown_name(f"key of report of {path}", key, REPORT_KEYS)
    if study is not None:
        variants: tuple[Variant, ...] = ()
    elif raw.get("methods"):
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
        for name in fig.runs if study is None else ():  # a study's: checked when it runs
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
        benchmark=str(raw.get("benchmark") or ""),
        variants=variants,
        blocks=tuple(str(b) for b in raw["blocks"]),
        title=str(raw.get("title") or ""),
        preset=raw.get("preset"),
        settings=dict(raw.get("settings") or {}),
        run=dict(raw.get("run") or {}),
        figures=tuple(figures),
        columns=columns,
        fraction=float(table.get("fraction", 0.1)),
        study=None if study is None else str(study),
        report=dict(report),
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


def _value(mean: float, se: float, column: Column) -> str:
    """``mean ± se`` in the column's unit and digits (no ± with fewer than two seeds)."""
    scale, unit = (100.0, "%") if column.percent else (1.0, "")
    d = 1 if column.percent else column.digits
    if se != se:  # fewer than two seeds: no standard error
        return f"{scale * mean:.{d}f}{unit}"
    return f"{scale * mean:.{d}f}{unit} ± {scale * se:.{d}f}{unit}"


def _cell(row: Any, column: Column) -> str:
    return f"{_value(row.early, row.early_se, column)} → {_value(row.late, row.late_se, column)}"


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


def image_lines(spec: Spec, doc: Path, root: Path) -> list[str]:
    """A Markdown image per figure, its path relative to the doc's folder."""
    import os

    lines = []
    for fig in spec.figures:
        rel = os.path.relpath(root / fig.out, (root / doc).parent)
        alt = fig.metric or ", ".join(m for m, _ in fig.panels) or "reported metric"
        lines.append(f"![{spec.name}: {alt}]({Path(rel).as_posix()})")
    return lines


def block_text(spec: Spec, dirs: dict[str, Path], doc: Path, root: Path) -> str:
    """The generated lines of one block (image paths relative to the doc's folder)."""
    parts = [table_markdown(spec, dirs)] if spec.columns else []
    parts += image_lines(spec, doc, root)
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


def _check_blocks(spec: Spec, root: Path) -> None:
    """Every block of ``spec`` exists, before anything runs."""
    for doc in spec.blocks:
        if not (root / doc).is_file():
            raise ConfigError(f"{spec.path}: block file {doc} does not exist under {root}")
        if spec.name not in blocks_in(root / doc):
            begin, end = _markers(spec.name)
            raise ConfigError(f"{root / doc} has no block '{begin}' … '{end}'")


def _draw(spec: Spec, dirs: dict[str, Path], root: Path) -> list[Path]:
    """The figures of ``spec`` from the runs ``dirs`` (by name)."""
    from lopkit.results import plot_grid, plot_runs

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
    return figures


def reproduce(
    spec: Spec,
    root: str | Path = ".",
    runs: str | Path = "runs/reproduce",
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run what ``spec`` needs that is missing, draw its figures, rewrite its blocks.

    Runs go to ``runs/<spec>/<run name>`` (a study to ``runs/<spec>``); figure and block
    paths are relative to ``root`` (the repository). Returns ``{"runs": {name: dir},
    "figures": [...], "changed": [...], "seconds": s}``."""
    from lopkit._running import run_or_reuse

    root, start = Path(root), time.perf_counter()
    _check_blocks(spec, root)
    if spec.study is not None:
        dirs, texts = _run_study(spec, root, Path(runs) / spec.name, progress, log)
    else:
        dirs = {}
        for variant in spec.variants:
            experiment = experiment_of(spec, variant)
            run_dir = Path(runs) / spec.name / variant.name.replace("+", "_")
            log(f"{spec.name}: {variant.name} → {run_dir}")
            run_or_reuse(experiment, run_dir, progress=progress, replace=True, log=log)
            dirs[variant.name] = run_dir
        texts = None
    figures = _draw(spec, dirs, root)
    changed = []
    for doc in spec.blocks:
        if texts is None:
            text = block_text(spec, dirs, Path(doc), root)
        else:
            text = texts(Path(doc))
        if rewrite_block(root / doc, spec.name, text):
            changed.append(doc)
    return {
        "runs": dirs,
        "figures": figures,
        "changed": changed,
        "seconds": time.perf_counter() - start,
    }


# ---- a study figure file ------------------------------------------------------------------
def _run_study(spec: Spec, root: Path, out: Path, progress: bool, log: Callable[[str], None]):
    """Sweep the study, write its report, and return (each method's best cell directory,
    ranked; a function of a doc path giving its block's text)."""
    import pandas as pd

    from lopkit._errors import LopkitError
    from lopkit.results import _study as layout
    from lopkit.results import early_late, read_config
    from lopkit.results._report import write_report
    from lopkit.results._study_stats import higher_is_better, parse_seeds
    from lopkit.sweep import load_spec as load_study_spec
    from lopkit.sweep import sweep

    study_file = root / spec.study
    if not study_file.is_file():
        raise ConfigError(f"{spec.path}: study file {spec.study} does not exist under {root}")
    study = load_study_spec(study_file)
    for i, fig in enumerate(spec.figures):
        for name in fig.runs:
            if name not in study.methods:
                raise unknown_name(f"run of figures[{i}] of {spec.path}", name, list(study.methods))
    log(f"{spec.name}: study {spec.study} → {out}")
    result = sweep(study_file, out, jobs=spec.report.get("jobs"), progress=progress)
    log(result.summary())
    left = len(result.cells) - result.count("done")
    if left:
        raise LopkitError(
            f"{spec.name}: {left} of {len(result.cells)} cells of {out} are not done (see "
            f"{out / layout.MANIFEST_FILE}; failed ones rerun with `lopkit sweep "
            f"{spec.study} --out {out} --retry-failed`); no block was rewritten"
        )
    select = spec.report.get("select_seeds")
    write_report(out, out / "report.html", ci=spec.report.get("ci", "se"), select_seeds=select)
    best = pd.read_csv(out / "report.best.csv")
    higher = higher_is_better(str(best["metric"].iloc[0]))
    best = rank_cells(best, higher)
    dirs = {m: layout.cell_dir(out, r) for m, r in zip(best["method"], best["run"], strict=True)}
    df = layout.load_study(out)
    if select:
        df = df[~df["seed"].isin(parse_seeds(select))]  # the reported seeds only
    probes = [early_late(df, c.metric, c.layer, fraction=spec.fraction) for c in spec.columns]
    config = read_config(next(iter(dirs.values())))["run"]

    def text(doc: Path) -> str:
        parts = [_ranking(spec, best, probes, higher), *image_lines(spec, doc, root)]
        parts.append(_study_caption(spec, study, config, select, higher))
        return "\n\n".join(parts)

    return dirs, text


def rank_cells(best: Any, higher: bool) -> Any:
    """``best`` (a frame with ``auc`` and ``final``) ranked by stream average, best first; a
    cell whose final window is not finite (it diverged) after every finite one."""
    key = best["auc"].where(best["final"].notna()) * (-1.0 if higher else 1.0)
    ranked = best.assign(_key=key).sort_values("_key", kind="stable", na_position="last")
    return ranked.drop(columns="_key").reset_index(drop=True)


def _ranking(spec: Spec, best: Any, probes: list[Any], higher: bool) -> str:
    """The block's table: the methods ranked by their best cell's stream average."""
    metric = str(best["metric"].iloc[0])
    better = "higher" if higher else "lower"
    labels = [c.label or (c.metric + (f" ({c.layer})" if c.layer else "")) for c in spec.columns]
    header = [
        "rank",
        "method",
        "best setting",
        f"{metric}: stream average ({better} is better)",
        f"{metric}: final",
        *(f"{label}: final" for label in labels),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in enumerate(best.itertuples(), start=1):
        setting = row.settings if isinstance(row.settings, str) and row.settings else "—"
        cells = [
            str(rank),
            f"`{row.method}`",
            setting,
            _value(row.auc, row.auc_se, Column(metric)),
            _value(row.final, row.final_se, Column(metric))
            if row.final == row.final
            else "diverged (not finite)",
        ]
        for column, t in zip(spec.columns, probes, strict=True):
            found = [r for r in t[t["run"] == row.run].itertuples() if r.late == r.late]
            cells.append(_value(found[0].late, found[0].late_se, column) if found else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _study_caption(spec: Spec, study: Any, run: dict, select: Any, higher: bool) -> str:
    n_cells = sum(max(1, _product(values)) for values in study.methods.values()) * max(
        1, len(study.benchmarks)
    )
    what = ", ".join(f"`{b}`" for b in study.benchmarks) + (
        f", preset `{study.preset}`" if study.preset else ""
    )
    chosen = (
        f"chosen on seeds {select} and reported on the others"
        if select
        else "chosen and reported on the same seeds (which favours the chosen settings)"
    )
    if n_cells == len(study.methods) * max(1, len(study.benchmarks)):
        rows = "Each method's row is its one cell"
    else:
        rows = f"Each method's row is its best cell by stream average, {chosen}"
    order = "ranked highest first" if higher else "ranked lowest first"
    return (
        f"*{spec.title + ': ' if spec.title else ''}{what}, {run.get('seeds', '?')} seeds × "
        f"{int(run.get('steps', 0)):,} steps per cell, {n_cells} cells (`{spec.study}`). "
        f"{rows}; stream average: the mean over the whole run's finite values ({order}; a "
        f"cell that diverged last); final: the mean over the last 10% of the run; "
        f"other columns: the best cell's value over the last {100 * spec.fraction:g}% of the "
        f"run; mean ± standard error over seeds. Made by `{command(spec)}` from "
        f"`figures/{spec.name}.yaml`; the full page (every cell, curves, sensitivity): "
        f"`lopkit report` on the study directory.*"
    )


def _product(values: dict[str, Any]) -> int:
    n = 1
    for v in values.values():
        n *= len(v) if isinstance(v, list) else 1
    return n
