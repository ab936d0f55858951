"""The command line: every class of bad input gets a clear message and exit code 2."""

import subprocess
import sys

import pytest

from lopkit.cli import main
from lopkit.results import load

FAST = ["--steps", "1000", "--bin-size", "500", "--metrics-every", "500", "--no-progress"]


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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
        (["--steps", "1234"], "multiple of bin_size"),
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
