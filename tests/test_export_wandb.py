"""lopkit export --wandb: each W&B offline run holds one seed's values of the metrics table
at the table's steps, in the run's group with its config; read back from the runs' .wandb
transaction logs with wandb's own reader (``wandb leet inspect --json``)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lopkit
from _cli_helpers import run_cli
from lopkit.results import export_wandb, load
from test_export import _run as synthetic_run

pytest.importorskip("wandb")  # the dev extra installs it; the test then always runs


def read_wandb_run(folder) -> dict:
    """{"run": the run record, "history": {step: {key: value}}} of one offline run folder
    (the ``_``-prefixed keys W&B adds, runtime and timestamp, left out)."""
    (log,) = folder.glob("run-*.wandb")
    inspect = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)]
    text = subprocess.run(inspect, capture_output=True, text=True, check=True, timeout=60).stdout
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    history = {}
    for r in records:
        if r["type"] == "history":
            item = r["history"]["item"]
            history[int(r["history"]["step"]["num"])] = {
                k: float(v) for k, v in item.items() if not k.startswith("_")
            }
    return {"run": run, "history": history}


def table_by_step(rows) -> dict:
    """{step: {tag: value}} of one seed's rows of the metrics table."""
    out: dict = {}
    for r in rows.itertuples():
        tag = f"{r.metric}/{r.layer}" if r.layer else r.metric
        out.setdefault(int(r.step), {})[tag] = float(r.value)
    return out


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory):
    """A tiny real run: scr with CBP, two seeds × two swept step sizes, a dead-unit probe."""
    out = tmp_path_factory.mktemp("engine") / "scr-cbp"
    lopkit.run(
        "scr", "cbp", {"lr": [0.01, 0.03]}, seeds=2, steps=1_000, bin_size=250,
        metrics=("dead_fraction",), metrics_every=500, out=out,
    )  # fmt: skip
    return out


def test_each_offline_run_holds_one_seeds_table_values_at_its_steps(engine_run, tmp_path):
    before = os.environ.get("WANDB_MODE")
    written = export_wandb(engine_run, tmp_path / "wb")
    assert os.environ.get("WANDB_MODE") == before  # the caller's environment is left alone
    assert sorted(written) == sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    df = load(engine_run)
    assert set(df["metric"]) == {"mse", "dead_fraction"}  # a probe with a per-layer value
    seen = set()
    for folder in written:
        got = read_wandb_run(folder)
        run, config = got["run"], got["run"]["config"]["update"]
        seed, lr = config["seed"], config["benchmark_config"]["lr"]
        assert lr in (0.01, 0.03) and seed in (0, 1)  # the swept list became this run's value
        assert run["run_group"] == "scr-cbp" and run["job_type"] == f"lr={lr:g}"
        assert run["display_name"] == f"scr-cbp/lr={lr:g}/seed_{seed}"
        assert config["remedies"]["cbp"]["replacement_rate"] == 1e-4  # config.yaml as config
        rows = df[(df["seed"] == seed) & (df["lr"] == lr)]
        expected = table_by_step(rows)
        assert list(got["history"]) == [250, 500, 750, 1_000] == sorted(expected)
        assert set(got["history"][500]) == {"mse", "dead_fraction", "dead_fraction/hidden_0"}
        assert got["history"] == expected  # the very float64 values, step for step
        seen.add((lr, seed))
    assert seen == {(0.01, 0), (0.01, 1), (0.03, 0), (0.03, 1)}


def test_a_diverged_value_stays_nan_and_the_cli_says_how_to_sync(tmp_path, capsys):
    run = synthetic_run(tmp_path)  # seed 1's mse at step 200 is NaN (diverged)
    code, out, err = run_cli(capsys, "export", str(run), "--wandb", str(tmp_path / "wb"))
    assert code == 0, err
    where = tmp_path / "wb" / "wandb"
    assert f"2 W&B offline runs in {where} (wandb sync {where}/offline-run-*)" in out
    runs = [read_wandb_run(f) for f in sorted(where.glob("offline-run-*"))]
    by_seed = {r["run"]["config"]["update"]["seed"]: r for r in runs}
    assert by_seed[0]["run"]["run_group"] == "run" and "job_type" not in by_seed[0]["run"]
    assert by_seed[0]["history"][200] == {"mse": 2.0, "dead_fraction/hidden_0": 0.5}
    assert by_seed[1]["history"][100]["mse"] == 2.0
    assert np.isnan(by_seed[1]["history"][200]["mse"])


def test_a_wrong_run_dir_or_missing_wandb_is_a_clear_error(tmp_path, capsys, monkeypatch):
    wb = str(tmp_path / "wb")
    code, _, err = run_cli(capsys, "export", str(tmp_path / "none"), "--wandb", wb)
    assert code == 2 and "not a run directory" in err and "Traceback" not in err
    assert not (tmp_path / "wb").exists()
    code, _, err = run_cli(capsys, "export", str(synthetic_run(tmp_path)))
    assert code == 2 and "--wandb" in err
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    code, _, err = run_cli(capsys, "export", str(tmp_path / "run"), "--wandb", wb)
    assert code == 2 and "pip install 'lopkit[wandb]'" in err
