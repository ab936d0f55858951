"""Studies: the spec, its expansion into cells, ids, validation; the report's statistics."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from lopkit._errors import ConfigError
from lopkit.cli import main
from lopkit.results._study_stats import (
    best_cells,
    cell_table,
    interval,
    last_window,
    log_spaced,
    parse_seeds,
    seed_scores,
)
from lopkit.sweep import cell_id, expand, parse_spec
from lopkit.sweep._progress import eta, format_line, format_seconds
from lopkit.sweep._worker import thread_env

pytestmark = pytest.mark.unit  # the sub-minute tier (make test-unit): pure functions

SPEC = {
    "benchmark": "scr",
    "seeds": 2,
    "steps": 2000,
    "run": {"bin_size": 1000, "metrics_every": 1000},
    "grid": {"activation": ["relu", "tanh"]},
    "methods": {
        "backprop": {},
        "l2": {"l2.weight_decay": ["1e-3", 1e-2, 1e-1]},
        "cbp": {"cbp.replacement_rate": [1e-4, 1e-3], "cbp.maturity_threshold": 50},
    },
}


def test_expansion_is_the_product_of_grid_and_method_axes_in_spec_order():
    cells = expand(parse_spec(SPEC))
    assert len(cells) == 2 * (1 + 3 + 2)
    assert [c.method for c in cells[:6]] == ["backprop", "l2", "l2", "l2", "cbp", "cbp"]
    assert [c.swept["activation"] for c in cells] == ["relu"] * 6 + ["tanh"] * 6
    l2 = [c for c in cells if c.method == "l2"]
    # the resolved, typed value: the string "1e-3" and the number 0.001 are one setting
    assert [c.swept["l2.weight_decay"] for c in l2[:3]] == [0.001, 0.01, 0.1]
    assert all(c.swept["l2.weight_decay"] is None for c in cells if c.method != "l2")
    cbp = [c for c in cells if c.method == "cbp"]
    assert all(c.resolved["remedies"]["cbp"]["maturity_threshold"] == 50 for c in cbp)
    assert all(c.resolved["run"]["seeds"] == 2 for c in cells)
    assert len({c.id for c in cells}) == len(cells)
    assert list(parse_spec(SPEC).swept_keys) == [
        "method",
        "activation",
        "l2.weight_decay",
        "cbp.replacement_rate",
        "cbp.maturity_threshold",
    ]


def test_ids_do_not_depend_on_key_order_spelling_or_execution_settings():
    ids = {frozenset(c.swept.items()): c.id for c in expand(parse_spec(SPEC))}
    shuffled = {
        "methods": {
            "cbp": {"cbp.maturity_threshold": "50", "cbp.replacement_rate": ["1e-4", "0.001"]},
            "l2": {"l2.weight_decay": [0.001, "0.01", "1e-1"]},
            "backprop": {},
        },
        "grid": {"activation": ["tanh", "relu"]},
        "run": {"metrics_every": 1000, "bin_size": "1000", "chunk_bins": 1},
        "steps": 2000,
        "seeds": 2,
        "benchmark": "scr",
    }
    again = {frozenset(c.swept.items()): c.id for c in expand(parse_spec(shuffled))}
    assert again == ids
    # a setting that changes what is computed changes the id
    other = expand(parse_spec({**SPEC, "seeds": 3}))
    assert not {c.id for c in other} & set(ids.values())


def test_ids_are_stable_across_processes(tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "lopkit.cli", "sweep", str(spec), "--out", str(tmp_path / "s")]
        + ["--dry-run"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines()[:-1]]
    assert listed == [c.id for c in expand(parse_spec(SPEC))]
    assert "12 cells" in proc.stdout
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


def test_cell_id_is_a_hash_of_the_resolved_config_without_execution_settings():
    resolved = {"benchmark": "scr", "run": {"seeds": 2, "chunk_bins": 5}, "method": "l2"}
    assert cell_id(resolved) == cell_id({**resolved, "run": {"seeds": 2, "checkpoint_every": 3}})
    assert cell_id(resolved) != cell_id({**resolved, "run": {"seeds": 3}})
    assert len(cell_id(resolved)) == 12 and int(cell_id(resolved), 16) >= 0


@pytest.mark.parametrize(
    "change, fragments",
    [
        # the same messages as `lopkit run` (tests/test_cli.py), naming the cell
        ({"grid": {"lrr": [0.1]}}, ["unknown setting 'lrr'", "cell scr · backprop · lrr=0.1"]),
        ({"methods": {"cbq": {}}}, ["unknown remedy 'cbq'", "cbp"]),
        (
            {"methods": {"l2": {"l2.weight_decay": [1e-3, -1]}}},
            ["weight_decay must be >= 0", "l2.weight_decay=-1"],
        ),
        ({"methods": {"backprop": {"l2.weight_decay": 1}}}, ["'l2'", "not in the method"]),
        ({"steps": 1234}, ["multiple of bin_size"]),
        ({"grid": {"activation": ["relu6"]}}, ["activation", "tanh"]),
        ({"seeds": 0}, ["seeds must be > 0"]),
        ({"preset": "nope"}, ["unknown preset 'nope'", "quick"]),
        # a missing data set: lopkit run's message (where to put the files), for the cell
        (
            {"benchmark": "permuted", "settings": {"data": "mnist", "data_dir": "/nonexistent"}},
            ["cell permuted · backprop", "no IDX files", "how to get it"],
        ),
        ({"gird": {}}, ["unknown key of study", "'gird'", "did you mean 'grid'"]),
        ({"grid": {"activation": "relu"}}, ["grid.activation must be a non-empty list"]),
        ({"grid": {"lr": [0.01, 1e-2]}}, ["resolve to the same configuration"]),
    ],
)
def test_invalid_studies_are_refused_before_anything_runs(capsys, tmp_path, change, fragments):
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, **change}, sort_keys=False))
    code = main(["sweep", str(spec), "--out", str(tmp_path / "s"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err
    assert "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_a_directory_that_is_not_a_study_is_left_alone(capsys, tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("precious")
    code = main(["sweep", str(spec), "--out", str(tmp_path / "s"), "--no-progress"])
    assert code == 2 and "not a lopkit study" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["notes.txt"]


def test_presets_and_precedence():
    spec = {"benchmark": "scr", "preset": "quick", "seeds": 3, "settings": {"lr": 0.003}}
    spec["methods"] = {"backprop": {"lr": [0.001]}}
    (cell,) = expand(parse_spec(spec))
    assert cell.resolved["run"]["seeds"] == 3  # the top level beats the preset's 20
    assert cell.resolved["run"]["steps"] == 1_000_000  # from the preset
    assert cell.resolved["benchmark_config"]["lr"] == 0.001  # the method's axis beats settings


# ------------------------------------------------------------------ report statistics


def test_log_spacing_rule():
    assert log_spaced([1e-5, 1e-4, 1e-3])
    assert log_spaced([0.001, 0.003, 0.01, 0.03])
    assert not log_spaced([0.1, 0.2, 0.3, 0.4])
    assert log_spaced([1e-3, 1e-1]) and not log_spaced([1, 2])
    assert not log_spaced([0, 1, 10]) and not log_spaced([5])


def test_parse_seeds_and_last_window():
    assert parse_seeds("0-3,7") == {0, 1, 2, 3, 7}
    for bad in ("a", "3-1", "1,,2"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    assert last_window(20, None) == 2 and last_window(3, None) == 1 and last_window(4, 9) == 4


def test_scores_intervals_and_best_cells_by_hand():
    rows = []
    for run, base in (("a", 1.0), ("b", 2.0)):
        for seed in (0, 1, 2):
            for step, v in ((10, base), (20, base + seed), (30, base + 2 * seed)):
                rows.append((run, seed, step, "mse", "", v))
    df = pd.DataFrame(rows, columns=["run", "seed", "step", "metric", "layer", "value"])
    scores = seed_scores(df, "mse", last=1).set_index(["run", "seed"])
    assert scores.loc[("a", 2), "auc"] == pytest.approx((1 + 3 + 5) / 3)
    assert scores.loc[("a", 2), "final"] == 5.0
    table = cell_table(scores.reset_index()).set_index("run")
    assert table.loc["a", "final"] == pytest.approx(3.0)  # finals 1, 3, 5
    assert table.loc["a", "final_se"] == pytest.approx(2 / math.sqrt(3))
    assert table.loc["a", "n_seeds"] == 3
    mean, se, lo, hi, n = interval(np.array([1.0, 3.0, 5.0, np.nan]), "bootstrap")
    assert (mean, n) == (3.0, 3) and 1.0 <= lo < mean < hi <= 5.0
    table = table.reset_index().assign(method="m")
    assert best_cells(table, ["method"])["run"].tolist() == ["a"]
    assert best_cells(table, ["method"], higher=True)["run"].tolist() == ["b"]


def test_progress_and_thread_caps():
    assert format_seconds(75) == "1m15s" and format_seconds(3725) == "1h02m"
    assert format_seconds(float("nan")) == "?"
    assert eta([10.0, 20.0], left=4, parallel=2) == 30.0 and math.isnan(eta([], 3, 2))
    line = format_line(3, 2, 1, 10, 61.0, 30.0)
    assert "3/10 done" in line and "2 running" in line and "1 failed" in line
    assert "4 pending" in line and "ETA 30s" in line
    env = thread_env(1, {"XLA_FLAGS": "--xla_foo=1"})
    assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_cpu_multi_thread_eigen=false"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert "XLA_FLAGS" not in thread_env(4, {}) and thread_env(4)["MKL_NUM_THREADS"] == "4"
    # each cell process gets its share of the cores as CPU devices, unless the user chose
    assert env["LOPKIT_CPU_DEVICES"] == "1" and thread_env(4, {})["LOPKIT_CPU_DEVICES"] == "4"
    assert thread_env(2, {"LOPKIT_CPU_DEVICES": "1"})["LOPKIT_CPU_DEVICES"] == "1"


def test_several_benchmarks_are_conditions_of_their_own():
    spec = {"scr": {"hidden": 10}, "permuted": {"data": "digits"}}  # each its own settings
    spec = parse_spec({"benchmark": spec, "methods": ["backprop", "l2"]})
    cells = expand(spec)
    assert [(c.benchmark, c.method) for c in cells] == [
        ("scr", "backprop"),
        ("scr", "l2"),
        ("permuted", "backprop"),
        ("permuted", "l2"),
    ]
    assert spec.swept_keys[:2] == ["benchmark", "method"] and spec.condition_keys == ["benchmark"]
    # each benchmark's own defaults: permuted has one bin per task, scr 10,000 steps
    assert cells[0].resolved["run"]["bin_size"] == 10_000
    assert cells[0].resolved["benchmark_config"]["hidden"] == [10]
    assert cells[2].resolved["benchmark_config"]["data"] == "digits"
    assert cells[2].resolved["run"]["bin_size"] != cells[0].resolved["run"]["bin_size"]
