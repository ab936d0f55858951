"""Errors that tell the truth (issue 24): what is wrong, what is allowed, nothing lost."""

import dataclasses
import types
import typing

import pytest

from _cli_helpers import run_cli as _run
from lopkit import _config
from lopkit._errors import ConfigError
from lopkit._experiment import RunConfig
from lopkit.benchmarks import BENCHMARKS
from lopkit.methods import REMEDIES
from lopkit.results import load, read_config


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
