"""The command line: ``lopkit list | run | resume | sweep | report | plot | export | bench | demo
| data check``.

Exit codes: 0 done; 1 ``sweep`` finished with failed cells; 2 bad input (the message says
what is wrong and what is allowed; nothing already written is touched); 3 ``run`` finished
but every seed diverged (no finite results); 4 the machine failed, not the input (an
``OSError`` such as a full disk, a lost file system or a permission denied, other than a
path on the command line that is missing or has a file in the way): the message gives the
cause; 130 interrupted (Ctrl-C; continue with ``--resume``). Errors 2 and 4 also say what
was saved (a run's last intact checkpoint and the command that continues it).
"""

from __future__ import annotations

import argparse
import errno
import shlex
import sys
import warnings
from pathlib import Path

from lopkit import _axes
from lopkit._errors import ConfigError, LopkitError
from lopkit.data._errors import DataError

EXIT_BAD_INPUT = 2
EXIT_ALL_DIVERGED = 3
EXIT_ENVIRONMENT = 4
EXIT_INTERRUPTED = 130
EXIT_CODES = (
    "exit codes: 0 done; 1 sweep finished with failed cells; 2 bad input (what is wrong and "
    "what is allowed; nothing already written is touched); 3 every seed diverged (the run "
    "finished, but with no finite results); 4 the machine failed, not the input (disk full, "
    "permission denied, a lost file system: the cause is named; a run's last checkpoint is "
    "kept and --resume continues it); 130 interrupted (continue with --resume)"
)


def _note(message: str) -> None:
    print(f"lopkit: {message}", file=sys.stderr, flush=True)


def _parse_settings(items: list[str]) -> dict[str, str]:
    settings = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {item!r}")
        settings[key.strip()] = value.strip()
    return settings


LIST_TOPICS = ("all", "benchmarks", "remedies", "metrics")


def _remedy_lines(remedy, benchmark=None) -> list[str]:
    """``key = default: help`` per setting; with a benchmark, its own defaults, marked *."""
    from lopkit import _config

    own = benchmark.remedy_defaults.get(remedy.name, {}) if benchmark else {}
    lines = []
    for key, default, help_ in _config.describe(remedy.config):
        mark = ""
        if key in own and _config.coerce(remedy.config, key, own[key]) != default:
            generic, default = default, _config.coerce(remedy.config, key, own[key])
            mark = f" [{benchmark.name}; generic {generic!r}]"
        axis = " [list]" if _config.is_axis(remedy.config, key) else ""
        lines.append(f"      {remedy.name}.{key} = {default!r}{mark}: {help_}{axis}")
    return lines


def _list_benchmark(name: str) -> None:
    """A benchmark's settings, suggested run settings, presets and remedy defaults."""
    from lopkit import _config
    from lopkit.benchmarks import get_benchmark
    from lopkit.experiments import available_presets, load_preset
    from lopkit.methods import REMEDIES

    b = get_benchmark(name)
    print(f"{b.name}: {b.summary}  [{b.source}]")
    print("\nsettings (--set key=value; [list]: may be a list, key=a,b,c, run as one program):")
    for key, default, help_ in _config.describe(b.config):
        axis = " [list]" if _config.is_axis(b.config, key) else ""
        print(f"  {key} = {default!r}: {help_}{axis}")
    print("\nrun settings it suggests (--steps, --bin-size, … override them):")
    for key, value in b.run_defaults_for(b.config()).items():
        print(f"  {key} = {value!r}")
    presets = available_presets(b.name)
    print("\npresets (--preset NAME):" + ("" if presets else " none"))
    for preset in presets:
        summary = " ".join(load_preset(b.name, preset)["summary"].split())
        print(f"  {preset}: {summary}")
    print(
        f"\nremedies on {b.name} (--method a+b, --set <remedy>.<key>=<value>; "
        f"[{b.name}; generic …] marks this benchmark's own defaults):"
    )
    for r in REMEDIES.values():
        print(f"  {r.name:<22} {r.summary}")
        for line in _remedy_lines(r, b):
            print(line)


def _cmd_list(args: argparse.Namespace) -> int:
    from lopkit import _config
    from lopkit.benchmarks import BENCHMARKS, get_benchmark
    from lopkit.engine._probes import PROBES
    from lopkit.methods import REMEDIES

    what = args.what
    benchmark = get_benchmark(args.benchmark) if args.benchmark else None
    if what in BENCHMARKS:
        _list_benchmark(what)
        return 0
    if what not in LIST_TOPICS:
        raise _config.unknown_name("topic or benchmark", what, [*LIST_TOPICS, *BENCHMARKS])
    if what in ("all", "benchmarks"):
        print("benchmarks (lopkit list NAME: its settings, presets and remedy defaults):")
        for b in BENCHMARKS.values():
            print(f"  {b.name:<22} {b.summary}  [{b.source}]")
    if what in ("all", "remedies"):
        where = (
            f" on {benchmark.name}" if benchmark else " (generic; --benchmark NAME for one's own)"
        )
        print(f"remedies{where} (compose with +, set with --set <remedy>.<key>=<value>):")
        for r in REMEDIES.values():
            changes = ", ".join(r.parts) or "nothing"
            print(f"  {r.name:<22} {r.summary}  [{r.source}; changes: {changes}]")
            if what == "remedies":
                for line in _remedy_lines(r, benchmark):
                    print(line)
    if what in ("all", "metrics"):
        print("metrics (--metrics name,name; aliases in parentheses):")
        for p in PROBES.values():
            alias = f" ({', '.join(p.aliases)})" if p.aliases else ""
            print(f"  {p.name + alias:<22} {p.summary}")
    return 0


def _diverged_summary(diverged_at, seeds: int, bin_size: int) -> str | None:
    """'k of K seeds diverged …' with the steps, or None when none did."""
    import numpy as np

    steps = np.sort(np.asarray(diverged_at)[np.asarray(diverged_at) >= 0])
    if steps.size == 0:
        return None
    shown = ", ".join(f"{int(t):,}" for t in steps[:10]) + (", …" if steps.size > 10 else "")
    return (
        f"{steps.size} of {seeds} seeds diverged (loss not finite) at step "
        f"{shown}; their values are NaN from that step's bin on"
    )


def _run_flags(args: argparse.Namespace) -> dict:
    """The run settings given as ``lopkit run`` flags (None where not given)."""
    run = {
        "seeds": args.seeds,
        "steps": args.steps,
        "first_seed": args.first_seed,
        "base_seed": args.base_seed,
        "bin_size": args.bin_size,
        "metrics_every": args.metrics_every,
        "checkpoint_every": args.checkpoint_every,
        "checkpoint_seconds": args.checkpoint_seconds,
        "vectorize": args.vectorize,
    }
    if args.metrics is not None:
        run["metrics"] = tuple(m for m in args.metrics.split(",") if m.strip())
    return run


def experiment_of(args: argparse.Namespace):
    """The validated experiment and its run directory for ``lopkit run`` arguments."""
    from lopkit._experiment import make_experiment
    from lopkit.benchmarks import get_benchmark
    from lopkit.experiments import load_preset, preset_settings
    from lopkit.methods import parse_method

    if args.config or not args.benchmark:
        return _experiment_of_config(args)
    settings = {}
    if args.preset:  # the preset first: --data, --set and the run flags override it
        get_benchmark(args.benchmark)  # an unknown benchmark is named as such
        preset = load_preset(args.benchmark, args.preset)
        settings.update(preset_settings(preset, parse_method(args.method)))
    if args.data:
        settings["data"] = args.data
    if getattr(args, "agent", None):
        settings["agent"] = args.agent
    settings.update(_parse_settings(args.set))
    run = _run_flags(args)
    experiment = make_experiment(args.benchmark, args.method, settings, **run)
    preset = f"-{args.preset}" if args.preset else ""
    return experiment, Path(args.out or f"runs/{args.benchmark}{preset}-{experiment.method}")


def _note_linear(experiment) -> None:
    """Say which probes a learner without hidden layers (``hidden=``) does not record."""
    from lopkit.engine._probes import absent_without_hidden

    absent = absent_without_hidden(experiment.run.metrics)
    if getattr(experiment.config, "hidden", None) == () and absent:
        _note(
            f"not recorded: {', '.join(absent)} (computed on hidden layers; this learner has "
            "none, hidden=); weights and whole-network probes are"
        )


def _cmd_run(args: argparse.Namespace) -> int:
    from lopkit._experiment import run_experiment

    experiment, out = experiment_of(args)
    args.run_dir = out  # for what an error says was saved (_saved)
    for key, why in experiment.chosen:
        _note(f"{key} = {why}")
    _note_linear(experiment)
    summary = run_experiment(
        experiment,
        out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        log=_note,
    )
    if summary.get("bins_run", 0) == 0 and summary["finished"]:
        print(f"{out}: already complete")
        return 0
    r = experiment.run
    if summary.get("interrupted"):
        _note(
            f"stopped at step {summary['next_step']:,} of {r.steps:,} (checkpoint written); "
            f"continue with `lopkit resume {out}`"
        )
        return EXIT_INTERRUPTED
    rate = summary["seed_steps_per_second"]
    unit = summary.get("unit", "seed-step")
    points = len(_axes.grid(experiment.axes)) if experiment.axes else 0
    grid = f"{points} values ({', '.join(experiment.swept)}) × " if points else ""
    print(
        f"{out}: {grid}{r.seeds} seeds × {r.steps:,} steps of "
        f"{args.benchmark} with {experiment.method} in {summary['seconds']:.1f} s "
        f"({rate:,.0f} {unit}s/s); results: {out / 'metrics.parquet'}"
    )
    diverged_at = summary["state"]["diverged_at"]
    line = _diverged_summary(diverged_at, len(diverged_at), r.bin_size)
    if line is None:
        return 0
    if (diverged_at >= 0).all():
        _note(
            f"warning: every seed diverged — {line}. The run has no finite results to plot; "
            f"a smaller step size (--set lr=…) usually helps. Exit code {EXIT_ALL_DIVERGED}."
        )
        return EXIT_ALL_DIVERGED
    _note(line)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from lopkit.sweep import dry_run, sweep

    out = Path(args.out or f"studies/{Path(args.study).stem}")
    if args.dry_run:
        rows = dry_run(args.study, out)
        for cid, state, label in rows:
            print(f"{cid}  {state:<11}  {label}")
        print(f"{len(rows)} cells; nothing run (--dry-run)")
        return 0
    try:
        result = sweep(
            args.study,
            out,
            executor=args.executor,
            jobs=args.jobs,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
            address=args.address,
            transfer=args.no_shared_path,
            max_retries=args.max_retries,
        )
    except KeyboardInterrupt:
        print(f"\nlopkit: interrupted; run the same sweep again to continue {out}", file=sys.stderr)
        return 130
    print(result.summary())
    return 1 if result.count("failed") else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from lopkit.results import write_report

    paths = write_report(
        args.study,
        out=args.out,
        metric=args.metric,
        last=args.last,
        ci=args.ci,
        select_seeds=args.select_seeds,
    )
    print("\n".join(str(p) for p in paths))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from lopkit.engine._probes import PROBES
    from lopkit.results import plot_runs

    aliases = {a: p.name for p in PROBES.values() for a in p.aliases}
    metric = aliases.get(args.metric, args.metric)  # --metric erank → effective_rank
    if args.out is not None and Path(args.out).is_dir():
        raise LopkitError(f"--out {args.out} is a directory; name a file, e.g. {args.out}/fig.png")
    # an unknown metric or layer is a ResultsError (a LopkitError: exit 2) listing the valid
    # ones; any other error is not the input's fault and is not reported as if it were
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = [Path(d) for d in args.runs]
        out = args.out if args.out is not None else _default_plot_path(runs, metric, args.layer)
        plot_runs(
            runs,
            metric=metric,
            layer=args.layer,
            out=out,
            label_key=args.label_key,
            logy=args.logy,
            x=args.x,
            bin_tasks=args.bin_tasks,
        )
    for w in caught:
        _note(f"warning: {w.message}")
    print(out)
    return 0


def _default_plot_path(runs: list[Path], metric: str | None, layer: str) -> Path:
    """Where ``lopkit plot`` writes without --out: one run's plots/ (else --out is needed)."""
    from lopkit.results._plot import default_path

    if len(runs) != 1:
        raise LopkitError("--out is required unless exactly one run directory is plotted")
    return default_path(runs, metric, layer)


def _cmd_bench(args: argparse.Namespace) -> int:
    from lopkit.bench import main as bench_main

    return bench_main(quick=args.quick, write=args.write)


def _cmd_demo(args: argparse.Namespace) -> int:
    from lopkit.experiments.demo import main as demo_main

    return demo_main(out=Path(args.out), seeds=args.seeds, steps=args.steps)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from lopkit import _config, _reproduce

    specs = _reproduce.find_specs(args.figures)
    if not specs:
        raise ConfigError(f"no figure files (*.yaml) in {args.figures}")
    if args.list or not (args.names or args.all):
        print(f"figure files in {args.figures} (lopkit reproduce NAME…, or --all):")
        for name, path in specs.items():
            spec = _reproduce.load_spec(path)
            print(f"  {name:<22} {spec.title}  → {', '.join(spec.blocks)}")
        return 0
    names = list(specs) if args.all else args.names
    for name in names:  # validate every file first: a typo fails before hours of runs
        if name not in specs:
            raise _config.unknown_name("figure file", name, specs)
    chosen = [_reproduce.load_spec(specs[n]) for n in names]
    for spec in chosen:
        result = _reproduce.reproduce(spec, root=args.root, runs=args.runs, progress=True)
        moved = ", ".join(result["changed"]) or "no block changed"
        print(f"{spec.name}: {result['seconds']:.0f} s; rewrote {moved}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from lopkit import data

    results = data.check(args.data_dir)
    print(data.describe_root(args.data_dir))
    print(data.format_check(results))
    return 0


def _add_config_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--config",
        metavar="CONFIG_YAML",
        help="run the experiment of a run's config.yaml (or its directory) again: every "
        "setting from it, --set and the run flags override; with --out (default "
        "runs/<benchmark>-<method>)",
    )


def _experiment_of_config(args: argparse.Namespace):
    """``lopkit run --config FILE``: the experiment of a run's config.yaml, with the
    command line's --set and run flags changing it; and its run directory."""
    from lopkit._api import _config_file, experiment_from_config

    if not args.config:
        raise ConfigError("lopkit run needs a benchmark (see `lopkit list`) or --config FILE")
    if args.benchmark or args.preset or args.data or args.method != "backprop":
        raise ConfigError(
            "--config gives the benchmark, the method and every setting; change settings "
            "with --set key=value and the run flags (--seeds, --steps, …), not with a "
            "benchmark, --method, --preset or --data"
        )
    _, config = _config_file(args.config)
    run = _run_flags(args)
    experiment = experiment_from_config(config, _parse_settings(args.set), **run)
    args.benchmark = experiment.benchmark.name
    return experiment, Path(args.out or f"runs/{args.benchmark}-{experiment.method}")


def _cmd_resume(args: argparse.Namespace) -> int:
    """``lopkit resume RUN``: ``lopkit run --config RUN/config.yaml --out RUN --resume``."""
    run = Path(args.run)
    if not (run / "config.yaml").is_file():
        raise LopkitError(f"cannot resume: {run} holds no run (no config.yaml)")
    args.run_dir = run  # for what an error says was saved (_saved)
    run_args = parser().parse_args(["run", "--config", str(run), "--out", str(run), "--resume"])
    run_args.no_progress = args.no_progress
    return _cmd_run(run_args)


def _add_resume_command(sub) -> None:
    s = sub.add_parser(
        "resume",
        help="continue an interrupted run from its last checkpoint, with its config.yaml's "
        "settings (the same result as the run uninterrupted)",
        epilog=EXIT_CODES,
    )
    s.add_argument("run", help="run directory (holding config.yaml)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=_cmd_resume)


def _cmd_export(args: argparse.Namespace) -> int:
    from lopkit.results import export_tensorboard, export_wandb

    if not (args.tensorboard or args.wandb):
        raise ConfigError("lopkit export needs a format: --tensorboard DIR and/or --wandb DIR")
    for run in args.runs:
        if args.tensorboard:
            out = Path(args.tensorboard)
            if len(args.runs) > 1:
                out = out / Path(run).resolve().name
            written = export_tensorboard(run, out)
            print(f"{run}: {len(written)} event folders in {out} (tensorboard --logdir {out})")
        if args.wandb:
            written = export_wandb(run, args.wandb)
            where = Path(args.wandb) / "wandb"
            earlier = {p.name for p in where.glob("offline-run-*")} - {p.name for p in written}
            folders = f"{where}/offline-run-*" if not earlier else " ".join(map(str, written))
            print(f"{run}: {len(written)} W&B offline runs in {where} (wandb sync {folders})")
    return 0


def _add_export_command(sub) -> None:
    s = sub.add_parser(
        "export", help="a run's metrics for other tools: TensorBoard event files, W&B offline runs"
    )
    s.add_argument("runs", nargs="+", help="run directories")
    s.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="write TensorBoard event files (one folder per seed, and mean) into DIR (with "
        "several runs, DIR/<run name>/); view with `tensorboard --logdir DIR`",
    )
    s.add_argument(
        "--wandb",
        metavar="DIR",
        help="write W&B offline runs (one per seed, grouped by run, its config as W&B config) "
        "into DIR/wandb/ (needs pip install 'lopkit[wandb]'); upload with "
        "`wandb sync DIR/wandb/offline-run-*`",
    )
    s.set_defaults(fn=_cmd_export)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lopkit",
        description="A lab for loss of plasticity in continual learning.",
        epilog=EXIT_CODES,
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "list",
        help="benchmarks, remedies and metrics; `lopkit list scr`: one benchmark's settings, "
        "presets and remedy defaults",
    )
    s.add_argument(
        "what",
        nargs="?",
        default="all",
        help="all, benchmarks, remedies, metrics, or a benchmark's name (e.g. scr)",
    )
    s.add_argument("--benchmark", help="with `remedies`: the defaults that benchmark sets")
    s.set_defaults(fn=_cmd_list)

    s = sub.add_parser("run", help="run many seeds of a benchmark with a method", epilog=EXIT_CODES)
    s.add_argument("benchmark", nargs="?", help="benchmark name (see `lopkit list benchmarks`)")
    s.add_argument("--method", default="backprop", help="remedies joined by +, e.g. cbp+l2")
    s.add_argument(
        "--preset", help="named settings, e.g. quick or paper (src/lopkit/experiments/*.yaml)"
    )
    s.add_argument("--data", help="data set of a benchmark over labeled data (--set data=NAME)")
    s.add_argument("--agent", help="the agent of an RL benchmark, e.g. dqn (--set agent=NAME)")
    s.add_argument("--seeds", type=int, help="number of seeds (default 10)")
    s.add_argument("--steps", type=int, help="steps per seed")
    s.add_argument("--first-seed", type=int, help="id of the first seed")
    s.add_argument("--base-seed", type=int, help="root of all randomness")
    s.add_argument(
        "--bin-size",
        type=int,
        help="steps per reported error bin (default: the benchmark's, or one that divides --steps)",
    )
    s.add_argument(
        "--metrics", help="comma-separated probes (see `lopkit list metrics`); '' for none"
    )
    s.add_argument("--metrics-every", type=int, help="steps between probe snapshots")
    s.add_argument("--checkpoint-every", type=int, help="chunks between checkpoints")
    s.add_argument(
        "--checkpoint-seconds",
        type=float,
        help="about how often a checkpoint is written (default 60; the first after one bin)",
    )
    s.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any setting, e.g. lr=0.003 or cbp.replacement_rate=1e-4; a continuous one "
        "may be a list (lr=0.003,0.01): every value × seed runs in one program",
    )
    s.add_argument(
        "--vectorize",
        choices=("values", "none"),
        help="with list settings: values (default: one program for all values × seeds) or "
        "none (one program per value; the same results)",
    )
    s.add_argument("--out", help="run directory (default runs/<benchmark>-<method>)")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    s.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flag(s)
    s.set_defaults(fn=_cmd_run)
    _add_resume_command(sub)

    s = sub.add_parser(
        "sweep", help="run a study: a grid of methods × settings × seeds", epilog=EXIT_CODES
    )
    s.add_argument("study", help="study file (YAML; see docs/studies.md)")
    s.add_argument("--out", help="study directory (default studies/<study file name>)")
    s.add_argument("--jobs", type=int, help="cells run at once (default: the cores)")
    s.add_argument("--executor", default="local", choices=("local", "ray"))
    s.add_argument("--address", help="Ray cluster to use, e.g. auto (default: start a local one)")
    s.add_argument(
        "--no-shared-path",
        action="store_true",
        help="Ray: send results back to the driver instead of writing them on a shared path",
    )
    s.add_argument("--max-retries", type=int, default=3, help="Ray: retries of a lost task")
    s.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    s.add_argument("--dry-run", action="store_true", help="list the cells and their ids")
    s.add_argument("--no-progress", action="store_true", help="no progress view")
    s.set_defaults(fn=_cmd_sweep)

    s = sub.add_parser("report", help="one self-contained HTML page (and CSV tables) of a study")
    s.add_argument("study", help="study directory (written by lopkit sweep)")
    s.add_argument("--out", help="HTML path (default <study>/report.html)")
    s.add_argument("--metric", help="metric to compare (default: the benchmark's error metric)")
    s.add_argument("--last", type=int, help="bins in the final-performance window (default 10%%)")
    s.add_argument("--ci", choices=("se", "bootstrap"), default="se", help="interval shown")
    s.add_argument(
        "--select-seeds",
        help="seeds to choose the best settings on, e.g. 0-4; reported on the other seeds",
    )
    s.set_defaults(fn=_cmd_report)

    s = sub.add_parser("plot", help="mean ± standard error over seeds, one line per run directory")
    s.add_argument("runs", nargs="+", help="run directories")
    s.add_argument("--out", help="PNG path (default <run>/plots/<metric>.png for one run)")
    s.add_argument(
        "--metric", help="recorded metric to draw (default: the run's reported one, e.g. mse)"
    )
    s.add_argument("--layer", default="", help="layer of a per-layer metric ('' = whole network)")
    s.add_argument("--label-key", help="config key to label lines by, e.g. method")
    s.add_argument("--logy", action="store_true", help="log-scale y axis")
    s.add_argument(
        "--x",
        choices=("task", "step"),
        help="x axis (default: task for task-based benchmarks, else step)",
    )
    s.add_argument(
        "--bin-tasks",
        type=int,
        metavar="N",
        help="average each seed over N tasks first (the paper bins continual ImageNet by 50)",
    )
    s.set_defaults(fn=_cmd_plot)
    _add_export_command(sub)

    s = sub.add_parser("bench", help="measure throughput (seed-steps/s) of the engine")
    s.add_argument("--quick", action="store_true", help="fewer repetitions")
    s.add_argument(
        "--write", metavar="FILE.md", help="also put the output in FILE.md's bench block"
    )
    s.set_defaults(fn=_cmd_bench)

    s = sub.add_parser("demo", help="the demo: slowly-changing regression, four remedies, figures")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--seeds", type=int, default=20)
    s.add_argument("--steps", type=int, default=None)
    s.set_defaults(fn=_cmd_demo)

    s = sub.add_parser(
        "reproduce",
        help="regenerate published figures and tables from their figure files (figures/*.yaml)",
    )
    s.add_argument("names", nargs="*", help="figure files by name (lopkit reproduce --list)")
    s.add_argument("--all", action="store_true", help="every figure file")
    s.add_argument("--list", action="store_true", help="list the figure files and their blocks")
    s.add_argument("--figures", default="figures", help="the figure files' folder")
    s.add_argument("--root", default=".", help="the folder figure and block paths start from")
    s.add_argument(
        "--runs", default="runs/reproduce", help="where the runs go (reused and resumed)"
    )
    s.set_defaults(fn=_cmd_reproduce)

    s = sub.add_parser("data", help="local data sets")
    dsub = s.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser(
        "check", help="which data sets are present, and how to get the missing ones"
    )
    c.add_argument("--data-dir", help="data root (default $LOPKIT_DATA, else ~/.lopkit/data)")
    c.set_defaults(fn=_cmd_data)
    return p


def _user_paths(args: argparse.Namespace) -> list[Path]:
    """The paths named on the command line (and a run's directory, once known)."""
    paths = [getattr(args, k, None) for k in ("out", "study", "data_dir", "run_dir")]
    paths += getattr(args, "runs", None) or []
    return [Path(p).absolute() for p in paths if p]


def _named_by_user(err: OSError, args: argparse.Namespace) -> bool:
    """Whether ``err`` is a path on the command line (or under or above one) that is missing
    or has a file in the way: the input's fault, not the machine's."""
    kinds = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
    if not isinstance(err, kinds) or not err.filename:
        return False
    failed = Path(err.filename).absolute()
    return any(
        failed == p or failed.is_relative_to(p) or p.is_relative_to(failed)
        for p in _user_paths(args)
    )


def _continue_command(argv: list[str]) -> str:
    """``lopkit run …`` as given, with --resume (and without --overwrite)."""
    if argv[:1] == ["resume"]:
        return "lopkit " + shlex.join(argv)
    rest = [a for a in argv if a != "--overwrite"]
    return "lopkit " + shlex.join(rest + ([] if "--resume" in rest else ["--resume"]))


def _saved_run(out: Path, argv: list[str] | None) -> str:
    """What ``out`` holds of the run, and (with ``argv``) the command that continues it."""
    from lopkit.engine._checkpoint import NEXT_BIN, checkpoint_path
    from lopkit.results import read_config

    again = f"; `{_continue_command(argv)}` continues it" if argv else ""
    try:
        if (out / "metrics.parquet").exists():
            return f"the finished run in {out} is intact"
        if (out / "cells").is_dir():  # --vectorize none: one run per grid point
            return f"the grid points' runs and checkpoints in {out / 'cells'} are intact{again}"
        if checkpoint_path(out).exists():
            import numpy as np

            with np.load(checkpoint_path(out)) as data:
                step = int(data[NEXT_BIN]) * int(read_config(out)["run"]["bin_size"])
            return f"the run's last checkpoint, at step {step:,}, in {out} is intact{again}"
        if (out / "config.yaml").exists():
            return f"{out} holds the run's settings but no checkpoint yet (no bin ran){again}"
        if out.exists() and any(out.iterdir()):
            return f"{out} was not changed"
    except (OSError, LopkitError, KeyError, ValueError) as err:
        return f"what {out} holds could not be read back ({err})"
    return f"nothing was written to {out}"


def _saved(args: argparse.Namespace, argv: list[str], failed: bool) -> str:
    """What is on disk after an error (``failed``: the machine's, so say how to go on)."""
    if args.command == "resume":
        argv = ["resume", str(args.run)]  # continued by the same command
        args.command = "run"
    if args.command == "run":
        out = getattr(args, "run_dir", None)
        if out is None:  # the input is checked before anything is written
            return "nothing was written"
        return _saved_run(Path(out), argv if failed else None)
    if args.command == "sweep":
        out = Path(args.out or f"studies/{Path(args.study).stem}")
        if not (out.exists() and any(out.iterdir())):
            return f"nothing was written to {out}"
        again = f"; `lopkit {shlex.join(argv)}` runs the rest" if failed else ""
        return f"the cells finished so far in {out} are kept{again}"
    if args.command in ("plot", "report", "export"):
        return "the runs it reads are unchanged (it only reads them)"
    return "nothing already written was changed"


def _error(message: str, saved: str) -> None:
    print(f"lopkit: error: {message}\nlopkit: {saved}", file=sys.stderr)


# Commands that run lopkit's programs: JAX is configured for them before anything imports it
# (lopkit._devices.configure; docs/design.md §7), so the workers of a sweep inherit it too.
COMPUTING = ("run", "resume", "sweep", "bench", "demo")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.command in COMPUTING:
        from lopkit import _devices

        _devices.configure()
    try:
        return args.fn(args)
    except (LopkitError, DataError) as err:
        _error(str(err), _saved(args, argv, failed=False))
        return EXIT_BAD_INPUT
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        if _named_by_user(err, args):  # a path given that is missing or has a file in the way
            if isinstance(err, FileNotFoundError):
                message = f"{err.strerror}{where}"
            else:
                message = (
                    f"a file is in the way where a directory is needed: {err.filename} "
                    f"({err.strerror})"
                )
            _error(message, _saved(args, argv, failed=False))
            return EXIT_BAD_INPUT
        code = errno.errorcode.get(err.errno, "") if err.errno else ""
        cause = f"{err.strerror or err}{f' [{code}]' if code else ''}{where}"
        _error(
            f"the machine failed, not the input: {cause}. Exit code {EXIT_ENVIRONMENT}: fix "
            "the cause (free disk space, permissions, the mount) and run again",
            _saved(args, argv, failed=True),
        )
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("\nlopkit: interrupted; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
