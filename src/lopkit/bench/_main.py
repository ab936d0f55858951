"""`make bench`: throughput of the engine, measured (never asserted by tests).

Slowly-changing regression at the paper's settings (20→5→1, batch 1), backprop and
continual backprop, K = 1, 10, 100, 1000 seeds as one program: seed-steps per second with
compilation excluded (one chunk runs first), then the cost of recording the default
probes every 10,000 steps, a step-size axis of 10 values × 100 seeds as one program vs
10 programs (``bench.axes``, compilation included), each remedy's speed relative to
backprop (on slowly-changing regression and on the permuted quick preset), the
permuted-inputs MLPs (the paper's 2000-wide net, one seed; its small 100-wide net, ten
seeds mapped and vmapped) against the machine's measured bandwidth and matmul rate, the
binary-task ConvNet vmapped vs mapped sequentially over seeds, and PPO's aggregate
env-steps/s (``bench.rl``; Ant, host and MJX back-ends:
``bench.ant``), and DQN's on MinAtar with its replay memory (``bench.dqn``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import platform
import resource
import sys
from pathlib import Path

import jax

from lopkit._errors import ConfigError
from lopkit.bench._timing import throughput

# What the Ant bench needs beyond lopkit's own dependencies (the `rl` extra).
RL_EXTRA = ("mujoco", "gymnasium")


def machine() -> str:
    """The machine in one line: CPU model, cores, memory, JAX and its devices."""
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory_text = f", {memory:.0f} GiB memory"
    except (ValueError, OSError, AttributeError):
        memory_text = ""
    return (
        f"{model}, {os.cpu_count()} cores{memory_text}; jax {jax.__version__}, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s)"
    )


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy (``lopkit bench --write``)."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def main(quick: bool = False, write: str | None = None) -> int:
    """Run the benchmarks; with ``write``, put their output in that Markdown file's
    ``bench`` block (between ``<!-- lopkit:begin bench -->`` and its end marker)."""
    if write is not None:  # a missing block fails now, not after the measurements
        from lopkit._reproduce import blocks_in

        if "bench" not in blocks_in(Path(write)):
            raise ConfigError(f"{write} has no block '<!-- lopkit:begin bench -->' … end")
        tee = _Tee(sys.stdout)
        with contextlib.redirect_stdout(tee):
            code = _measure(quick)
        from lopkit._reproduce import rewrite_block

        how = "`make bench`" if not quick else "`lopkit bench --quick`"
        text = f"Machine: {machine()}. Made by {how}.\n\n```\n{tee.copy.getvalue().strip()}\n```"
        rewrite_block(Path(write), "bench", text)
        print(f"\nwrote the bench block of {write}")
        return code
    return _measure(quick)


def _measure(quick: bool) -> int:
    repeats = 1 if quick else 2
    print(
        f"lopkit bench — jax {jax.__version__}, {platform.processor() or platform.machine()}, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s)"
    )
    print("\nslowly-changing regression (20→5→1, batch 1), seed-steps/s, compile excluded:")
    print(f"  {'K':>5} {'backprop':>14} {'cbp':>14} {'cbp/backprop':>13}")
    for k in (1, 10, 100, 1000):
        bins = 2 if k == 1 else 5
        bp = throughput("backprop", k, bins, repeats=repeats)
        cbp = throughput("cbp", k, bins, repeats=repeats)
        print(f"  {k:>5} {bp:>14,.0f} {cbp:>14,.0f} {bp / cbp:>12.2f}×")
    print("\nprobes (dead, erank, weights) every 10,000 steps, K = 100, backprop:")
    base = throughput("backprop", 100, 5, repeats=repeats)
    probed = throughput("backprop", 100, 5, metrics=("dead", "erank", "weights"), repeats=repeats)
    print(f"  without {base:,.0f}  with {probed:,.0f}  overhead {100 * (base / probed - 1):.1f}%")
    from lopkit.bench.axes import axis_vs_separate, format_axis

    print()
    print(format_axis(axis_vs_separate(steps=50_000 if quick else 100_000)))
    from lopkit.bench.remedies import permuted_quick_costs, remedy_costs

    print("\nremedies, K = 100, seed-steps/s and speed relative to backprop (1 = as fast):")
    for name, rate, rel in remedy_costs(k=100):
        print(f"  {name:<24} {rate:>14,.0f} {rel:>8.2f}×")
    print("\npermuted quick preset (digits, 64→100→100→100→10, 10 seeds), probes off:")
    for name, rate, rel in permuted_quick_costs(repeats=repeats):
        print(f"  {name:<24} {rate:>14,.0f} {rel:>8.2f}×")
    from lopkit.bench.permuted import (
        format_small_net,
        format_throughput,
        permuted_throughput,
        small_net_throughput,
    )

    print()
    print(format_throughput(permuted_throughput(repeats=repeats)))
    print(format_small_net(small_net_throughput(repeats=repeats)))
    from lopkit.bench import conv as bench_conv

    print()
    bench_conv.main(seeds=4, repeats=1)
    from lopkit.bench import rl as bench_rl

    print()
    bench_rl.main(repeats=repeats)
    from lopkit.bench import dqn as bench_dqn

    print()
    bench_dqn.main(repeats=repeats)
    missing = [m for m in RL_EXTRA if importlib.util.find_spec(m) is None]
    if missing:  # the `rl` extra: asked by name, so a real bug in the Ant code still raises
        print(f"\nAnt: skipped ({', '.join(missing)} not installed: pip install 'lopkit[rl]')")
    else:
        from lopkit.bench import ant as bench_ant

        print()
        bench_ant.main(["--mjx"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:,.0f} MiB")
    return 0
