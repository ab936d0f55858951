"""The command line: ``lopkit list | run | plot | bench | demo | data check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lopkit._errors import ConfigError, LopkitError
from lopkit.data._errors import DataError


def _parse_settings(items: list[str]) -> dict[str, str]:
    settings = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {item!r}")
        settings[key.strip()] = value.strip()
    return settings


def _cmd_list(args: argparse.Namespace) -> int:
    from lopkit import _config
    from lopkit.benchmarks import BENCHMARKS
    from lopkit.engine._probes import PROBES
    from lopkit.methods import REMEDIES

    what = args.what
    if what in ("all", "benchmarks"):
        print("benchmarks:")
        for b in BENCHMARKS.values():
            print(f"  {b.name:<22} {b.summary}  [{b.source}]")
    if what in ("all", "remedies"):
        print("remedies (compose with +, set with --set <remedy>.<key>=<value>):")
        for r in REMEDIES.values():
            print(f"  {r.name:<22} {r.summary}  [{r.source}]")
            if what == "remedies":
                for key, default, help_ in _config.describe(r.config, prefix=f"{r.name}."):
                    print(f"      {key} = {default!r}: {help_}")
    if what in ("all", "metrics"):
        print("metrics (--metrics name,name; aliases in parentheses):")
        for p in PROBES.values():
            alias = f" ({', '.join(p.aliases)})" if p.aliases else ""
            print(f"  {p.name + alias:<22} {p.summary}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from lopkit._experiment import make_experiment, run_experiment
    from lopkit.experiments import load_preset, preset_settings
    from lopkit.methods import parse_method

    settings = {}
    if args.preset:  # the preset first: --data, --set and the run flags override it
        preset = load_preset(args.benchmark, args.preset)
        settings.update(preset_settings(preset, parse_method(args.method)))
    if args.data:
        settings["data"] = args.data
    settings.update(_parse_settings(args.set))
    run = {
        "seeds": args.seeds,
        "steps": args.steps,
        "first_seed": args.first_seed,
        "base_seed": args.base_seed,
        "bin_size": args.bin_size,
        "metrics_every": args.metrics_every,
        "checkpoint_every": args.checkpoint_every,
    }
    if args.metrics is not None:
        run["metrics"] = tuple(m for m in args.metrics.split(",") if m.strip())
    experiment = make_experiment(args.benchmark, args.method, settings, **run)
    preset = f"-{args.preset}" if args.preset else ""
    out = Path(args.out or f"runs/{args.benchmark}{preset}-{experiment.method}")
    summary = run_experiment(
        experiment, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
    )
    if summary.get("bins_run", 0) == 0 and summary["finished"]:
        print(f"{out}: already complete")
        return 0
    rate = summary["seed_steps_per_second"]
    unit = summary.get("unit", "seed-step")
    print(
        f"{out}: {experiment.run.seeds} seeds × {experiment.run.steps:,} steps of "
        f"{args.benchmark} with {experiment.method} in {summary['seconds']:.1f} s "
        f"({rate:,.0f} {unit}s/s); results: {out / 'metrics.parquet'}"
    )
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from lopkit.engine._probes import PROBES
    from lopkit.results import plot_runs

    aliases = {a: p.name for p in PROBES.values() for a in p.aliases}
    metric = aliases.get(args.metric, args.metric)  # --metric erank → effective_rank
    try:
        out = plot_runs(
            [Path(d) for d in args.runs],
            metric=metric,
            layer=args.layer,
            out=args.out,
            label_key=args.label_key,
            logy=args.logy,
        )
    except ValueError as err:  # an unknown metric or layer: the message lists the valid ones
        raise LopkitError(str(err)) from None
    print(out)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from lopkit.bench import main as bench_main

    return bench_main(quick=args.quick)


def _cmd_demo(args: argparse.Namespace) -> int:
    from lopkit.experiments.demo import main as demo_main

    return demo_main(out=Path(args.out), seeds=args.seeds, steps=args.steps)


def _cmd_data(args: argparse.Namespace) -> int:
    from lopkit import data

    results = data.check(args.data_dir)
    print(data.format_check(results))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lopkit", description="A lab for loss of plasticity in continual learning."
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="benchmarks, remedies and metrics, with one-line descriptions")
    s.add_argument(
        "what", nargs="?", default="all", choices=("all", "benchmarks", "remedies", "metrics")
    )
    s.set_defaults(fn=_cmd_list)

    s = sub.add_parser("run", help="run many seeds of a benchmark with a method")
    s.add_argument("benchmark", help="benchmark name (see `lopkit list benchmarks`)")
    s.add_argument("--method", default="backprop", help="remedies joined by +, e.g. cbp+l2")
    s.add_argument(
        "--preset", help="named settings, e.g. quick or paper (src/lopkit/experiments/*.yaml)"
    )
    s.add_argument("--data", help="data set of a benchmark over labeled data (--set data=NAME)")
    s.add_argument("--seeds", type=int, help="number of seeds (default 10)")
    s.add_argument("--steps", type=int, help="steps per seed")
    s.add_argument("--first-seed", type=int, help="id of the first seed")
    s.add_argument("--base-seed", type=int, help="root of all randomness")
    s.add_argument("--bin-size", type=int, help="steps per reported error bin")
    s.add_argument(
        "--metrics", help="comma-separated probes (see `lopkit list metrics`); '' for none"
    )
    s.add_argument("--metrics-every", type=int, help="steps between probe snapshots")
    s.add_argument("--checkpoint-every", type=int, help="chunks between checkpoints")
    s.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any setting, e.g. lr=0.003 or cbp.replacement_rate=1e-4",
    )
    s.add_argument("--out", help="run directory (default runs/<benchmark>-<method>)")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    s.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=_cmd_run)

    s = sub.add_parser("plot", help="mean ± standard error over seeds, one line per run directory")
    s.add_argument("runs", nargs="+", help="run directories")
    s.add_argument("--out", help="PNG path (default <run>/plots/<metric>.png for one run)")
    s.add_argument("--metric", default="mse", help="recorded metric to draw (default mse)")
    s.add_argument("--layer", default="", help="layer of a per-layer metric ('' = whole network)")
    s.add_argument("--label-key", help="config key to label lines by, e.g. method")
    s.add_argument("--logy", action="store_true", help="log-scale y axis")
    s.set_defaults(fn=_cmd_plot)

    s = sub.add_parser("bench", help="measure throughput (seed-steps/s) of the engine")
    s.add_argument("--quick", action="store_true", help="fewer repetitions")
    s.set_defaults(fn=_cmd_bench)

    s = sub.add_parser("demo", help="the demo: slowly-changing regression, four remedies, figures")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--seeds", type=int, default=20)
    s.add_argument("--steps", type=int, default=None)
    s.set_defaults(fn=_cmd_demo)

    s = sub.add_parser("data", help="local data sets")
    dsub = s.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser(
        "check", help="which data sets are present, and how to get the missing ones"
    )
    c.add_argument("--data-dir", help="data root (default $LOPKIT_DATA)")
    c.set_defaults(fn=_cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except (LopkitError, DataError) as err:
        print(f"lopkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlopkit: interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
