"""A small study shared by the sweep tests: tiny scr cells (2 seeds × 4,000 steps)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

import lopkit
from lopkit.results import load

# 2 conditions × (backprop + l2 at two weight decays) = 6 cells; one chunk per bin, so an
# interrupted cell has checkpoints to resume from
SPEC = {
    "name": "tiny scr study",
    "benchmark": "scr",
    "seeds": 2,
    "steps": 4000,
    "run": {"bin_size": 1000, "metrics_every": 1000, "chunk_bins": 1},
    "grid": {"activation": ["relu", "tanh"]},
    "methods": {"backprop": {}, "l2": {"l2.weight_decay": [1e-3, 1e-1]}},
}


def write_spec(path: Path, spec: dict = SPEC) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cli_env() -> dict:
    """The environment of a `lopkit` subprocess that runs this tree's lopkit."""
    source = str(Path(lopkit.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": source + (os.pathsep + path if path else "")}


def start_sweep(spec: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lopkit.cli", "sweep", str(spec), "--out", str(out), *args],
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_driver(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the cells die with their driver (PR_SET_PDEATHSIG)


def cell_metrics(study: Path, cid: str) -> pd.DataFrame:
    df = load(study / "cells" / cid)
    return df.drop(columns="run").sort_values(
        ["metric", "layer", "seed", "step"], ignore_index=True
    )
