"""Errors that tell the truth (issue 24): what is wrong, what is allowed, nothing lost."""

import dataclasses
import errno
import shlex
import types
import typing

import pytest

import lopkit.results
from _cli_helpers import run_cli as _run
from lopkit import _config
from lopkit._errors import ConfigError, LopkitError, ResultsError
from lopkit._experiment import RunConfig, make_experiment, run_or_reuse
from lopkit.benchmarks import BENCHMARKS
from lopkit.cli import main
from lopkit.methods import REMEDIES
from lopkit.results import load, read_config
from lopkit.results._store import RunWriter


def _int_fields():
    """(config class, field name) of every whole-number setting (or tuple of them)."""
    classes = {RunConfig, *(b.config for b in BENCHMARKS.values())}
    classes |= {r.config for r in REMEDIES.values()}
    for cls in sorted(classes, key=lambda c: c.__name__):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                hint = next(a for a in typing.get_args(hint) if a is not type(None))
            if hint is int:
                yield cls, f.name
            elif typing.get_origin(hint) is tuple and int in typing.get_args(hint):
                yield cls, f.name


INT_FIELDS = list(_int_fields())


def test_there_are_int_fields_to_check():
    names = {(c.__name__, n) for c, n in INT_FIELDS}
    assert ("RunConfig", "steps") in names and ("SCRConfig", "hidden") in names
    assert len(INT_FIELDS) > 30


@pytest.mark.parametrize("value", ["1e308", "inf", "-inf", "nan", "2147483648", 10**400, 1e308])
def test_every_int_field_refuses_huge_and_non_finite_numbers(value):
    for cls, name in INT_FIELDS:
        with pytest.raises(ConfigError) as err:
            _config.coerce(cls, name, value)
        message = str(err.value)
        assert f"{cls.__name__}.{name}" in message  # the setting
        assert "whole number" in message and "2,147,483,647" in message  # what is allowed
        assert "got" in message  # what was given


def test_int_fields_take_whole_numbers_written_as_floats_or_with_underscores():
    assert _config.coerce(RunConfig, "steps", "1e6") == 1_000_000
    assert _config.coerce(RunConfig, "steps", "2_147_483_647") == 2**31 - 1
    with pytest.raises(ConfigError, match="whole number, got '1.5'"):
        _config.coerce(RunConfig, "steps", "1.5")


@pytest.mark.parametrize(
    "benchmark, setting",
    [
        ("permuted", "examples_per_task=1e308"),
        ("control", "envs_per_agent=1e308"),
        ("scr", "hidden=5,1e308"),
        ("scr", "num_bits=inf"),
    ],
)
def test_cli_huge_int_setting_is_a_config_error(capsys, tmp_path, benchmark, setting):
    data = ["--data", "digits"] if benchmark == "permuted" else []
    out = str(tmp_path / "r")
    code, _, err = _run(capsys, "run", benchmark, *data, "--set", setting, "--out", out)
    name = setting.partition("=")[0]
    assert code == 2, err
    assert name in err and "2,147,483,647" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "benchmark, extra, error",
    [
        ("scr", ["--metrics", "dead,linear,erank,srank,weights,param_norm,grad_norm"], "mse"),
        ("permuted", ["--data", "digits"], "accuracy"),
    ],
)
def test_a_linear_learner_runs_without_its_unit_probes(capsys, tmp_path, benchmark, extra, error):
    """``hidden=`` (the linear baseline): unit and rank probes absent, weight probes present."""
    out = tmp_path / "linear"
    code, _, err = _run(
        capsys,
        "run",
        benchmark,
        "--set",
        "hidden=",
        *extra,
        "--seeds",
        "2",
        "--steps",
        "1000",
        "--bin-size",
        "500",
        "--metrics-every",
        "500",
        "--no-progress",
        "--out",
        str(out),
    )
    assert code == 0, err
    table = load(out)
    recorded = set(zip(table.metric, table.layer, strict=True))
    assert {(error, ""), ("weight_magnitude", ""), ("weight_magnitude", "output")} <= recorded
    unit_metrics = {"dead_fraction", "linear_fraction", "effective_rank", "srank"}
    assert not unit_metrics & set(table.metric)
    assert "not recorded: dead_fraction" in err and "effective_rank" in err
    if benchmark == "scr":
        assert {"param_norm", "grad_norm"} <= set(table.metric)


def test_nearest_multiples_and_divisors():
    assert _config.nearest_multiples(307_000, 10_240) == "296,960 or 307,200"
    assert _config.nearest_multiples(500, 1_000) == "1,000"  # 0 steps is no run
    assert _config.nearest_divisors(300, 1_000) == "250 or 500"
    assert _config.nearest_divisors(2_000, 1_000) == "1,000"


@pytest.mark.parametrize(
    "argv, fragments",
    [
        # a fixed block (one PPO rollout of 2,048 steps) that steps is not a whole number of
        (["control", "--steps", "307000"], ["steps (307,000)", "2,048", "305,152 or 307,200"]),
        (["control", "--steps", "1000"], ["steps (1,000)", "rollout", "work: 2,048;"]),
        (["control", "--bin-size", "3000"], ["bin_size (3,000)", "2,048 or 4,096"]),
        (["scr", "--steps", "307000", "--bin-size", "10240"], ["296,960 or 307,200"]),
        (["scr", "--bin-size", "1000", "--metrics-every", "1500"], ["1,000 or 2,000", "0: no"]),
        (["scr", "--bin-size", "1000", "--set", "block_size=300"], ["250 or 500", "900 or 1,200"]),
    ],
)
def test_steps_and_bins_that_do_not_fit_name_the_nearest_that_do(capsys, tmp_path, argv, fragments):
    out = tmp_path / "r"
    code, _, err = _run(capsys, "run", *argv, "--seeds", "2", "--out", str(out))
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err
    assert not out.exists()


def test_a_set_bin_size_fits_the_benchmarks_probe_interval(capsys, tmp_path):
    """control probes every 10,240 steps; --bin-size 4096 makes that 8,192, with a note."""
    out = tmp_path / "r"
    argv = ["run", "control", "--steps", "8192", "--bin-size", "4096", "--seeds", "2"]
    code, _, err = _run(capsys, *argv, "--no-progress", "--out", str(out))
    assert code == 0, err
    assert "metrics_every = 8192" in err
    assert read_config(out)["run"]["metrics_every"] == 8192


def _failing_after(calls: int, error: OSError):
    """A RunWriter.append that writes ``calls`` parts, then fails with ``error``."""
    real = RunWriter.append
    count = {"n": 0}

    def append(self, chunk, df):
        count["n"] += 1
        if count["n"] > calls:
            raise error
        return real(self, chunk, df)

    return append


def test_a_full_disk_mid_run_is_exit_4_keeps_the_checkpoint_and_says_how_to_go_on(
    capsys, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    argv = ["run", "scr", "--seeds", "2", "--steps", "4000", "--bin-size", "1000",
            "--metrics-every", "1000", "--set", "chunk_bins=1", "--no-progress",
            "--out", str(out)]  # fmt: skip
    full = OSError(errno.ENOSPC, "No space left on device", str(out / "parts" / "x"))
    monkeypatch.setattr(RunWriter, "append", _failing_after(2, full))
    code, _, err = _run(capsys, *argv)
    assert code == 4, err
    assert "No space left on device [ENOSPC]" in err and "not the input" in err
    assert f"last checkpoint, at step 2,000, in {out} is intact" in err
    command = err.split("`")[1]
    assert command.startswith("lopkit run scr") and command.endswith("--resume")
    assert (out / "checkpoint" / "state.npz").exists() and (out / "config.yaml").exists()
    monkeypatch.undo()  # the disk has room again: the command given continues the run
    code, _, err = _run(capsys, *shlex.split(command)[1:])
    assert code == 0, err
    assert "resuming" in err and "from step 2,000" in err
    steps = load(out).query("metric == 'mse'").groupby("seed").step.apply(sorted)
    assert [list(s) for s in steps] == [[1000, 2000, 3000, 4000]] * 2


def test_bad_input_is_exit_2_and_says_nothing_was_written(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = _run(capsys, "run", "scr", "--steps", "1234", "--bin-size", "1000",
                        "--out", str(out))  # fmt: skip
    assert code == 2 and "nothing was written" in err and not out.exists()


def test_an_existing_run_is_named_intact_on_bad_input(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["run", "scr", "--seeds", "2", "--steps", "1000", "--bin-size", "1000",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert _run(capsys, *argv)[0] == 0
    before = (out / "metrics.parquet").read_bytes()
    code, _, err = _run(capsys, *argv)  # exists: needs --resume or --overwrite
    assert code == 2 and f"the finished run in {out} is intact" in err
    assert (out / "metrics.parquet").read_bytes() == before


@pytest.mark.parametrize(
    "error, code, fragments",
    [
        # a file under a run directory the user named that is missing: the input's fault
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "{run}/metrics.parquet"),
         2, ["No such file or directory: {run}/metrics.parquet", "only reads them"]),
        # the same error on a path the user did not name, or an I/O error: the machine's
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/elsewhere/font.ttf"),
         4, ["the machine failed", "/elsewhere/font.ttf"]),
        (OSError(errno.EIO, "Input/output error", "{run}/metrics.parquet"),
         4, ["Input/output error [EIO]", "only reads them"]),
    ],
)  # fmt: skip
def test_plot_tells_a_missing_input_from_a_failing_machine(
    capsys, tmp_path, monkeypatch, error, code, fragments
):
    run = str(tmp_path / "run")
    if error.filename:
        error.filename = error.filename.format(run=run)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(lopkit.results, "plot_runs", fail)
    got, _, err = _run(capsys, "plot", run, "--out", str(tmp_path / "fig.png"))
    assert got == code, err
    for fragment in fragments:
        assert fragment.format(run=run) in err


def test_plot_reports_a_bug_as_a_bug_not_as_bad_input(capsys, tmp_path, monkeypatch):
    """Only lopkit's own input errors (ResultsError) are exit 2; another ValueError raises."""

    def fail(*args, **kwargs):
        raise ValueError("a bug inside the plotting code")

    monkeypatch.setattr(lopkit.results, "plot_runs", fail)
    with pytest.raises(ValueError, match="a bug"):
        _run(capsys, "plot", str(tmp_path), "--out", str(tmp_path / "fig.png"))
    assert issubclass(ResultsError, LopkitError) and issubclass(ResultsError, ValueError)


def test_the_exit_codes_are_in_the_help(capsys):
    for argv in (["--help"], ["run", "--help"], ["sweep", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "2 bad input" in text and "4 the machine failed" in text and "130" in text


def test_run_or_reuse_keeps_a_run_with_other_settings_unless_told_to_replace_it(tmp_path):
    def experiment(seeds):
        return make_experiment(
            "scr", "backprop", seeds=seeds, steps=1_000, bin_size=1_000, metrics=()
        )

    run_dir = tmp_path / "run"
    run_or_reuse(experiment(2), run_dir)
    before = (run_dir / "metrics.parquet").read_bytes()
    run_or_reuse(experiment(2), run_dir)  # the same settings: reused, not rewritten
    assert (run_dir / "metrics.parquet").read_bytes() == before
    with pytest.raises(ConfigError) as err:
        run_or_reuse(experiment(3), run_dir)
    message = str(err.value)
    assert str(run_dir) in message and "run.seeds: 2 (saved) vs 3 (now)" in message
    assert "replace" in message and "It is kept" in message
    assert (run_dir / "metrics.parquet").read_bytes() == before  # nothing lost
    said = []
    run_or_reuse(experiment(3), run_dir, replace=True, log=said.append)
    assert len(said) == 1 and str(run_dir) in said[0] and "run.seeds: 2 (saved) vs 3" in said[0]
    assert sorted(load(run_dir).seed.unique()) == [0, 1, 2]


def test_a_study_rerun_with_other_settings_is_refused_naming_the_run(tmp_path, capsys):
    from lopkit.experiments import activations

    argv = ["--out", str(tmp_path), "--seeds", "2", "--activations", "relu",
            "--step-sizes", "0.01"]  # fmt: skip
    kw = {"activations": ("relu",), "step_sizes": (0.01,), "echo": False, "bin_size": 1_000}
    activations.run_study(tmp_path, seeds=2, steps=1_000, **kw)
    kept = (tmp_path / "relu-lr0.01" / "metrics.parquet").read_bytes()
    assert activations.main([*argv, "--steps", "2000"]) == 2
    err = capsys.readouterr().err
    assert "relu-lr0.01 holds a run with other settings" in err and "run.steps: 1000" in err
    assert (tmp_path / "relu-lr0.01" / "metrics.parquet").read_bytes() == kept
