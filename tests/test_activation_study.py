"""The activation study of slowly-changing regression (lopkit.experiments.activations)."""

import numpy as np
import pandas as pd

from lopkit.experiments import activations
from lopkit.results import load, read_config


def test_activation_study_runs_every_cell_and_reuses_finished_ones(tmp_path, capsys):
    kw = {"seeds": 2, "steps": 2_000, "bin_size": 1_000, "echo": False}
    table = activations.run_study(
        tmp_path, activations=("relu", "linear"), step_sizes=(0.01, 0.001), **kw
    )
    assert list(zip(table.activation, table.lr, strict=True)) == [
        ("relu", 0.01),
        ("linear", 0.01),
        ("relu", 0.001),
        ("linear", 0.001),
    ]
    assert np.all(np.isfinite(table[["early", "late"]].to_numpy()))
    # the linear learner is the official linear agent: no hidden layer
    assert read_config(tmp_path / "linear-lr0.01")["benchmark_config"]["hidden"] == []
    assert read_config(tmp_path / "relu-lr0.001")["benchmark_config"]["lr"] == 0.001
    # the table written is the table returned; the figure exists
    written = pd.read_csv(tmp_path / "early_late.csv")
    np.testing.assert_allclose(written["late"], table["late"])
    assert (tmp_path / "activations.png").stat().st_size > 10_000
    # a second call reuses the finished runs (the results file is not rewritten)
    before = load(tmp_path / "relu-lr0.01")
    mtime = (tmp_path / "relu-lr0.01" / "metrics.parquet").stat().st_mtime_ns
    again = activations.run_study(tmp_path, activations=("relu",), step_sizes=(0.01,), **kw)
    assert (tmp_path / "relu-lr0.01" / "metrics.parquet").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(load(tmp_path / "relu-lr0.01"), before)
    assert again.late.iloc[0] == table.late.iloc[0]
