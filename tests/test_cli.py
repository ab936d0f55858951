"""The command line: every class of bad input gets a clear message and exit code 2."""

import subprocess
import sys

import numpy as np
import pytest

from _cli_helpers import run_cli as _run
from lopkit.cli import main
from lopkit.results import load

FAST = ["--steps", "1000", "--bin-size", "500", "--metrics-every", "500", "--no-progress"]


@pytest.mark.parametrize(
    "argv, names",
    [
        (["run", "nope"], ["'nope'", "scr"]),
        (["run", "scr", "--method", "cbq"], ["'cbq'", "cbp", "backprop", "l2"]),
        (["run", "scr", "--method", "cbp+foo"], ["'foo'", "shrink_perturb"]),
        (["run", "scr", "--metrics", "dead,foo"], ["'foo'", "dead_fraction", "effective_rank"]),
        (["run", "scr", "--set", "lrr=0.1"], ["'lrr'", "lr", "activation"]),
        (
            ["run", "scr", "--method", "cbp", "--set", "cbp.rate=1"],
            ["'cbp.rate'", "cbp.replacement_rate"],
        ),
        (["run", "scr", "--set", "l2.weight_decay=1"], ["'l2'", "not in the method"]),
        (["run", "scr", "--set", "activation=relu6"], ["activation", "relu", "tanh"]),
    ],
)
def test_unknown_names_are_named_with_the_valid_choices(capsys, tmp_path, argv, names):
    code, out, err = _run(capsys, *argv, "--out", str(tmp_path / "r"))
    assert code == 2
    for name in names:
        assert name in err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written on bad input


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--set", "lr=-0.1"], "lr must be > 0"),
        (["--set", "lr=fast"], "lr must be a number"),
        (["--seeds", "0"], "seeds must be > 0"),
        (["--steps", "1234", "--bin-size", "1000"], "multiple of bin_size"),
        (["--set", "hidden=5.5"], "hidden must be a whole number"),
        (["--set", "flip_one=maybe"], "flip_one must be true or false"),
        (["--set", "lr"], "--set takes key=value"),
        (["--set", "flipping_bits=30"], "cannot exceed num_bits"),
        (
            ["--method", "cbp", "--set", "cbp.replacement_rate=2"],
            "replacement_rate must be in [0, 1]",
        ),
    ],
)
def test_invalid_values_get_a_clear_message(capsys, tmp_path, argv, fragment):
    code, _, err = _run(capsys, "run", "scr", *argv, "--out", str(tmp_path / "r"))
    assert code == 2 and fragment in err and "Traceback" not in err


def test_existing_run_is_never_overwritten_silently(capsys, tmp_path):
    out = str(tmp_path / "run")
    assert _run(capsys, "run", "scr", "--seeds", "2", *FAST, "--out", out)[0] == 0
    before = load(out)
    code, _, err = _run(capsys, "run", "scr", "--seeds", "2", *FAST, "--out", out)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert load(out).equals(before)
    # resuming a finished run with other settings is refused, naming the difference
    code, _, err = _run(capsys, "run", "scr", "--seeds", "3", *FAST, "--out", out, "--resume")
    assert code == 2 and "seeds" in err
    code, out_text, _ = _run(capsys, "run", "scr", "--seeds", "2", *FAST, "--out", out, "--resume")
    assert code == 0 and "already complete" in out_text
    assert _run(capsys, "run", "scr", "--seeds", "3", *FAST, "--out", out, "--overwrite")[0] == 0
    assert sorted(load(out).seed.unique()) == [0, 1, 2]


def test_overwrite_refuses_a_directory_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    code, _, err = _run(capsys, "run", "scr", *FAST, "--out", str(tmp_path), "--overwrite")
    assert code == 2 and "not a lopkit run" in err
    assert (tmp_path / "notes.txt").read_text() == "precious"


@pytest.mark.optimized  # the whole pipeline as users compile it
def test_run_writes_config_metrics_and_plot(capsys, tmp_path):
    out = tmp_path / "cbp"
    code, text, _ = _run(
        capsys,
        "run",
        "scr",
        "--method",
        "cbp+l2",
        "--seeds",
        "3",
        *FAST,
        "--set",
        "activation=tanh",
        "--out",
        str(out),
    )
    assert code == 0 and "metrics.parquet" in text
    config = (out / "config.yaml").read_text()
    assert "activation: tanh" in config and "replacement_rate" in config
    df = load(out)
    assert set(df.metric) >= {"mse", "dead_fraction", "effective_rank", "weight_magnitude"}
    assert sorted(df.seed.unique()) == [0, 1, 2]
    code, text, _ = _run(capsys, "plot", str(out), "--out", str(tmp_path / "fig.png"))
    assert code == 0 and (tmp_path / "fig.png").stat().st_size > 1000
    code, _, err = _run(
        capsys, "plot", str(out), "--metric", "nope", "--out", str(tmp_path / "x.png")
    )
    assert code == 2 and "mse" in err


def test_list_shows_benchmarks_remedies_metrics(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name in (
        "scr",
        "backprop",
        "cbp",
        "l2",
        "shrink_perturb",
        "dead_fraction",
        "effective_rank",
    ):
        assert name in out
    code, out, _ = _run(capsys, "list", "remedies")
    assert "cbp.replacement_rate" in out and "0.0001" in out


def test_bad_input_from_a_real_process_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "lopkit.cli", "run", "scr", "--method", "magic"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "unknown remedy 'magic'" in proc.stderr and "Traceback" not in proc.stderr


# ---- what a new user hits: divergence, bad paths, chosen defaults, the README ------


def test_all_seeds_diverged_warns_exits_3_and_plot_refuses(capsys, tmp_path):
    out = str(tmp_path / "div")
    code, _, err = _run(capsys, "run", "scr", "--set", "lr=1e9", "--seeds", "2", "--steps",
                        "100", "--bin-size", "100", "--no-progress", "--out", out)  # fmt: skip
    assert code == 3
    assert "every seed diverged" in err and "2 of 2 seeds diverged" in err
    code, _, err = _run(capsys, "plot", out)
    assert code == 2 and "no finite values" in err and "every seed diverged" in err
    assert not (tmp_path / "div" / "plots").exists()


def test_diverged_summary_names_how_many_and_when():
    from lopkit.cli import _diverged_summary

    assert _diverged_summary(np.array([-1, -1]), 2, 100) is None
    line = _diverged_summary(np.array([-1, 3_000, 5]), 3, 100)
    assert line.startswith("2 of 3 seeds diverged") and "step 5, 3,000" in line


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One small finished scr run, shared by the tests that only read it."""
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["run", "scr", "--seeds", "2", *FAST, "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "warmstart", "--set", "hidden="], "hidden needs at least one value"),
        (["run", "warmstart", "--set", "hidden=,"], "hidden needs at least one value"),
        (["run", "scr", "--out", "{file}"], "is a file, not a run directory"),
        (["run", "scr", "--out", "{file}/run"], "a file is in the way"),
        (["plot", "{run}", "--out", "{dir}"], "is a directory; name a file"),
        (["plot", "{run}", "--out", "{file}/fig.png"], "a file is in the way"),
        (["plot", "{run}", "--x", "task"], "has no tasks"),
        (["list", "scrr"], "did you mean 'scr'?"),
    ],
)
def test_paths_and_empty_values_get_a_clear_error(capsys, tmp_path, finished_run, argv, fragment):
    run = finished_run
    file = tmp_path / "fig.png"
    file.write_bytes(b"precious")
    (tmp_path / "figs").mkdir()
    places = {"file": str(file), "run": str(run), "dir": str(tmp_path / "figs")}
    code, _, err = _run(capsys, *[a.format(**places) for a in argv])
    assert code == 2 and fragment in err and "Traceback" not in err
    assert file.read_bytes() == b"precious" and list((tmp_path / "figs").iterdir()) == []


def test_unset_bin_size_is_chosen_to_fit_and_recorded(capsys, tmp_path):
    from lopkit._experiment import fitting_bin_size
    from lopkit.results import read_config

    assert [fitting_bin_size(s, 10_000) for s in (100, 15_000, 30_000, 10_007)] == [
        100,
        7_500,
        10_000,
        1,
    ]
    # with a fixed block (a rollout of 2,048 steps) the bin is a multiple of it, or none fits
    assert fitting_bin_size(14_336, 10_240, 2_048) == 2_048  # 7 rollouts: 7 bins of one
    assert fitting_bin_size(4_096, 10_240, 2_048) == 4_096
    assert fitting_bin_size(5_000, 10_240, 2_048) is None
    out = tmp_path / "r"
    code, _, err = _run(capsys, "run", "scr", "--steps", "100", "--seeds", "2",
                        "--no-progress", "--out", str(out))  # fmt: skip
    assert code == 0 and "bin_size = 100: chosen" in err
    config = read_config(out)
    assert config["run"]["bin_size"] == 100 and config["run"]["metrics_every"] == 100
    assert "not a multiple" in config["chosen"]["bin_size"]
    assert sorted(load(out).query("metric == 'mse'").step) == [100, 100]
    # a bin size the user set is kept, and its error stays
    code, _, err = _run(capsys, "run", "scr", "--steps", "100", "--bin-size", "30",
                        "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "multiple of bin_size (30)" in err
    # unknown names are reported before arithmetic
    code, _, err = _run(capsys, "run", "scr", "--metrics", "deadd", "--steps", "100",
                        "--bin-size", "30", "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "unknown metric 'deadd'" in err and "(did you mean 'dead'?)" in err


def test_list_a_benchmark_shows_its_settings_presets_and_remedy_defaults(capsys):
    code, out, _ = _run(capsys, "list", "scr")
    assert code == 0
    assert "flip_period = 10000: T: steps between changes" in out
    assert "quick: The paper's problem with 20 seeds" in out
    assert "l2.weight_decay = 0.01 [scr; generic 0.0001]" in out
    assert "bin_size = 10000" in out
    code, out, _ = _run(capsys, "list", "remedies", "--benchmark", "permuted")
    assert "cbp.utility = 'adaptable_contribution' [permuted; generic 'contribution']" in out
    code, out, _ = _run(capsys, "list", "remedies")
    assert "l2.weight_decay = 0.0001:" in out
    code, _, err = _run(capsys, "run", "binary_tasks", "--preset", "quick")
    assert code == 2 and "unknown benchmark 'binary_tasks' (did you mean 'binary'?)" in err


def _readme_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    return [
        line.split("#")[0].split()[1:]
        for line in re.findall(r"^lopkit run .*$", readme, flags=re.MULTILINE)
    ]


def test_readme_run_lines_are_valid_and_the_tour_set_changes_something():
    from lopkit.cli import experiment_of, parser
    from lopkit.methods import REMEDIES

    lines = _readme_runs()
    assert len(lines) >= 6
    for argv in lines:
        experiment, _ = experiment_of(parser().parse_args(argv))  # validates; runs nothing
        for item in [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]:
            key, _, _ = item.partition("=")
            if "." in key:  # a remedy setting: it must differ from that remedy's default
                remedy, _, field = key.partition(".")
                config = dict(zip(experiment.method_names, experiment.remedy_configs, strict=True))[
                    remedy
                ]
                default = REMEDIES[remedy].config()
                bench = experiment.benchmark.remedy_defaults.get(remedy, {})
                assert getattr(config, field) != bench.get(field, getattr(default, field)), item
