"""The public API: lopkit.run returns a Run, a run's config.yaml is enough to resume it or
to run it again (lopkit resume, lopkit run --config), and lopkit.results exports analysis
functions, not the writers."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import lopkit
import lopkit.results
from _cli_helpers import run_cli
from lopkit._api import experiment_from_config
from lopkit._errors import ConfigError, LopkitError
from lopkit._experiment import make_experiment, run_experiment
from lopkit._rundir import _differences

TINY = {"seeds": 2, "steps": 2_000, "bin_size": 500, "metrics": ()}


def test_run_returns_a_run_with_its_metrics_and_reuses_it(tmp_path):
    out = tmp_path / "cbp"
    run = lopkit.run("scr", "cbp", {"lr": [0.01, 0.03]}, out=out, **TINY)
    assert isinstance(run, lopkit.Run) and run.finished
    assert (run.benchmark, run.method, run.seeds, run.steps) == ("scr", "cbp", 2, 2_000)
    assert run.metric == "mse" and run.config["axes"] == ["lr"]
    m = run.metrics
    assert set(m["lr"]) == {0.01, 0.03} and set(m["seed"]) == {0, 1}
    assert sorted(m["step"].unique()) == [500, 1_000, 1_500, 2_000]
    stamp = (out / "metrics.parquet").stat().st_mtime_ns
    again = lopkit.run("scr", "cbp", {"lr": [0.01, 0.03]}, out=out, **TINY)  # reused
    assert (out / "metrics.parquet").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.metrics, m)
    assert lopkit.Run.load(out).config == run.config
    with pytest.raises(ConfigError, match="other settings"):
        lopkit.run("scr", "cbp", {"lr": 0.1}, out=out, **TINY)
    with pytest.raises(ConfigError, match="setting"):
        lopkit.run("scr", "cbp", {"no_such_setting": 1}, out=tmp_path / "x", **TINY)
    assert not (tmp_path / "x").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "benchmark, method, settings",
    [
        ("scr", "cbp+l2", {"lr": "0.01,0.03", "l2.weight_decay": "1e-4,1e-3"}),
        ("scr", "redo", {"hidden": "7", "flip_period": 50}),
        ("control", "backprop", {}),
    ],
)
def test_a_config_yaml_gives_back_the_same_experiment(benchmark, method, settings):
    original = make_experiment(benchmark, method, settings, seeds=2)
    again = experiment_from_config(original.resolved())
    assert _differences(original.resolved(), again.resolved()) == []
    assert again.identity == original.identity  # the same program, grid order included
    assert again.chosen == original.chosen


def test_a_config_with_changes_and_bad_configs(tmp_path):
    original = make_experiment("scr", "cbp", {"lr": "0.01,0.03"}, **TINY).resolved()
    changed = experiment_from_config(original, {"lr": [0.1]}, seeds=5)
    assert changed.run.seeds == 5 and changed.config.lr == 0.1 and changed.axes == ()
    with pytest.raises(ConfigError, match="version"):
        experiment_from_config({**original, "version": 99})
    with pytest.raises(ConfigError, match="lacks method"):
        experiment_from_config({k: v for k, v in original.items() if k != "method"})
    with pytest.raises(LopkitError, match="not a run's config.yaml"):
        lopkit.resume(tmp_path / "nothing")


def test_resume_continues_an_interrupted_run_bit_for_bit(tmp_path, capsys):
    run = {**TINY, "metrics": ("effective_rank",), "metrics_every": 1_000, "chunk_bins": 1}
    experiment = make_experiment("scr", "cbp", **run)
    run_experiment(experiment, tmp_path / "full", progress=False, log=None)
    cut = run_experiment(experiment, tmp_path / "cut", progress=False, stop_after_chunks=2)
    assert not cut["finished"] and not (tmp_path / "cut" / "metrics.parquet").exists()
    code, out, err = run_cli(capsys, "resume", str(tmp_path / "cut"), "--no-progress")
    assert code == 0, err
    assert "resuming" in err and "from step 1,000 of 2,000" in err
    full, resumed = (lopkit.Run.load(tmp_path / d).metrics for d in ("full", "cut"))
    assert "effective_rank" in set(full["metric"])  # probes too
    pd.testing.assert_frame_equal(full.drop(columns="run"), resumed.drop(columns="run"))
    assert lopkit.resume(tmp_path / "cut").finished  # finished: returned as it is
    code, out, _ = run_cli(capsys, "resume", str(tmp_path / "cut"))
    assert code == 0 and "already complete" in out
    code, _, err = run_cli(capsys, "resume", str(tmp_path / "nothing"))
    assert code == 2 and "no config.yaml" in err


def test_run_config_runs_a_run_again_with_changes(tmp_path, capsys):
    first = lopkit.run("scr", "cbp", {"lr": [0.01, 0.03]}, out=tmp_path / "a", **TINY)
    code, out, err = run_cli(
        capsys, "run", "--config", str(first.dir / "config.yaml"), "--out", str(tmp_path / "b"),
        "--first-seed", "2", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    second = lopkit.Run.load(tmp_path / "b")
    assert set(second.metrics["seed"]) == {2, 3} and second.config["axes"] == ["lr"]
    diffs = _differences(first.config, second.config)
    assert diffs == ["run.first_seed: 0 (saved) vs 2 (now)"]
    # the same seeds again: the same numbers (seeds 0–1 of a 4-seed rerun)
    again = lopkit.rerun(first.dir, tmp_path / "c", seeds=4)
    a = first.metrics.drop(columns="run")
    c = again.metrics.drop(columns="run")
    c = c[c["seed"] < 2].reset_index(drop=True)
    keys = list(a.columns[:-1])
    a, c = (t.sort_values(keys).reset_index(drop=True) for t in (a, c))
    pd.testing.assert_frame_equal(a, c)
    code, _, err = run_cli(capsys, "run", "--config", str(first.dir), "--method", "l2")
    assert code == 2 and "--config gives the benchmark" in err
    code, _, err = run_cli(capsys, "run")
    assert code == 2 and "needs a benchmark" in err
    with pytest.raises(LopkitError, match="resume"):
        lopkit.rerun(first.dir, first.dir)


@pytest.mark.slow  # three lopkit processes: about a minute on 2 cores
def test_a_killed_run_is_continued_exactly_by_lopkit_resume(tmp_path):
    """A real `lopkit run` process killed (SIGKILL) once its first checkpoint is written;
    `lopkit resume` then finishes it with the numbers of the run never killed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-c", "import sys; from lopkit.cli import main; sys.exit(main())"]
    run = [*argv, "run", "scr", "--method", "cbp", "--seeds", "2", "--steps", "40000",
           "--bin-size", "500", "--metrics", "", "--checkpoint-seconds", "0.5",
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([*run, "--out", str(tmp_path / "killed")], env=env)
    checkpoint = tmp_path / "killed" / "checkpoint" / "state.npz"
    while not checkpoint.exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "metrics.parquet").exists(), "finished before the kill"
    done = subprocess.run([*argv, "resume", str(tmp_path / "killed"), "--no-progress"],
                          env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    subprocess.run([*run, "--out", str(tmp_path / "whole")], env=env, check=True)
    a, b = (lopkit.Run.load(tmp_path / d).metrics for d in ("whole", "killed"))
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())


def test_lopkit_results_exports_analysis_not_writers():
    public = set(lopkit.results.__all__)
    for private in ("RunWriter", "write_config", "atomic_write_text", "atomic_write_bytes"):
        assert private not in public and not hasattr(lopkit.results, private)
    for name in public:
        assert getattr(lopkit.results, name) is not None
    assert {"load", "summarize", "plot_runs", "aggregate_scores", "export_tensorboard"} <= public
