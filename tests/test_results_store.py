"""The run store: atomic writes, RunWriter parts -> load / finalize, and aggregation."""

import math
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lopkit.results import (
    NoMetricsError,
    NotARunError,
    early_late,
    load,
    load_many,
    read_config,
    summarize,
)
from lopkit.results._io import atomic_write_bytes, atomic_write_parquet, atomic_write_text
from lopkit.results._store import RunWriter, write_config

DTYPES = {"seed": "int32", "step": "int64", "value": "float64"}


def chunk_frame(chunk, seeds=2, steps_per_chunk=3, metrics=(("mse", ""), ("dead_fraction", "h0"))):
    """Rows of one chunk, with the engine's natural (non-schema) dtypes: int64 seeds."""
    rows = [
        (seed, (chunk * steps_per_chunk + i + 1) * 100, m, layer, chunk + seed + 0.1 * i)
        for m, layer in metrics
        for seed in range(seeds)
        for i in range(steps_per_chunk)
    ]
    return pd.DataFrame(rows, columns=["seed", "step", "metric", "layer", "value"])


def new_run(tmp_path, name="run_a", config=None):
    run_dir = tmp_path / name
    write_config(run_dir, config or {"method": "backprop"})
    return run_dir, RunWriter(run_dir)


def normalized(df):
    """A frame with the schema's dtypes and plain-string text columns, for comparison."""
    df = df.astype(DTYPES).reset_index(drop=True)
    for col in ("run", "metric", "layer"):
        if col in df:
            df[col] = df[col].astype(str)
    return df


# ------------------------------------------------------------------ atomic writes


def test_atomic_writes_round_trip_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "blob.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    atomic_write_text(tmp_path / "note.txt", "héllo\n")
    assert (tmp_path / "note.txt").read_text(encoding="utf-8") == "héllo\n"
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    atomic_write_parquet(tmp_path / "t.parquet", df)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "t.parquet").astype({"b": str}), df.astype({"b": str})
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "blob.bin",
        "note.txt",
        "sub",
        "t.parquet",
    ]


def test_interrupted_atomic_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "old")

    def crash(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)  # fails after the data went into the temp file
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_config_round_trips_in_insertion_order(tmp_path):
    config = {"zeta": {"lr": 0.01, "betas": [0.9, 0.999]}, "alpha": "cbp", "seeds": 3}
    write_config(tmp_path / "r", config)
    back = read_config(tmp_path / "r")
    assert back == config
    assert list(back) == ["zeta", "alpha", "seeds"]


# ------------------------------------------------------------------ writer and load


def test_append_then_load_gives_the_same_rows_with_schema_dtypes(tmp_path):
    run_dir, writer = new_run(tmp_path)
    frames = [chunk_frame(c) for c in range(3)]
    frames[1]["step"] = frames[1]["step"].astype(float)  # coerced back to int64
    for c, f in enumerate(frames):
        writer.append(c, f)
    got = load(run_dir)
    assert list(got.columns) == ["run", "seed", "step", "metric", "layer", "value"]
    assert got.dtypes[["seed", "step", "value"]].astype(str).to_dict() == DTYPES
    for col in ("run", "metric", "layer"):
        assert pd.api.types.is_string_dtype(got[col]) and not isinstance(
            got[col].dtype, pd.CategoricalDtype
        )
    want = pd.concat(frames, ignore_index=True)
    want.insert(0, "run", "run_a")
    pd.testing.assert_frame_equal(normalized(got), normalized(want))


@pytest.mark.parametrize(
    "change, word",
    [
        (lambda f: f.drop(columns="layer"), "layer"),
        (lambda f: f.assign(task=0), "task"),
        (lambda f: f.assign(step=f["step"] + 0.5), "step"),
        (lambda f: f.assign(layer=None), "layer"),
    ],
)
def test_append_rejects_a_malformed_table_naming_the_column(tmp_path, change, word):
    _, writer = new_run(tmp_path)
    with pytest.raises(ValueError, match=word):
        writer.append(0, change(chunk_frame(0)))
    assert not list((tmp_path / "run_a").glob("metrics/*"))


def test_finalize_writes_sorted_concatenation_and_removes_parts(tmp_path):
    run_dir, writer = new_run(tmp_path)
    frames = [chunk_frame(c) for c in range(3)]
    for c, f in enumerate(frames):
        writer.append(c, f)
    parts = [pd.read_parquet(p) for p in sorted((run_dir / "metrics").glob("part-*.parquet"))]
    path = writer.finalize()
    assert path == run_dir / "metrics.parquet"
    assert not (run_dir / "metrics").exists()
    want = pd.concat(parts, ignore_index=True).sort_values(
        ["metric", "layer", "seed", "step"], ignore_index=True
    )
    got = pd.read_parquet(path)
    assert str(pq.read_schema(path).field("seed").type) == "int32"
    pd.testing.assert_frame_equal(normalized(got), normalized(want))
    assert got["metric"].is_monotonic_increasing
    assert len(load(run_dir)) == sum(len(f) for f in frames)
    assert writer.finalize() == path  # idempotent
    with pytest.raises(FileExistsError):
        writer.append(3, chunk_frame(3))


def test_discard_parts_after_drops_exactly_the_later_parts(tmp_path):
    run_dir, writer = new_run(tmp_path)
    for c in range(5):
        writer.append(c, chunk_frame(c))
    stale = run_dir / "metrics" / ".part-000005.parquet.abc.tmp"  # a write killed midway
    stale.write_bytes(b"PAR1 half")
    assert writer.discard_parts_after(2) == [3, 4]
    names = sorted(p.name for p in (run_dir / "metrics").iterdir())
    assert names == ["part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    assert sorted(load(run_dir)["step"].unique()) == [100 * i for i in range(1, 10)]


def test_load_orders_parts_by_chunk_number_past_six_digits(tmp_path):
    run_dir, writer = new_run(tmp_path)
    writer.append(1_000_000, chunk_frame(0).assign(value=2.0))
    writer.append(999_999, chunk_frame(0).assign(value=1.0))
    values = load(run_dir)["value"].to_numpy()
    assert (values[: len(values) // 2] == 1.0).all() and (values[len(values) // 2 :] == 2.0).all()


def test_load_of_a_non_run_dir_is_a_clear_file_not_found_error(tmp_path):
    with pytest.raises(NotARunError, match="nowhere"):
        load(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FileNotFoundError, match=r"plain.*config\.yaml"):
        load(tmp_path / "plain")
    run_dir, _ = new_run(tmp_path, "fresh")
    with pytest.raises(NoMetricsError, match="fresh.*no metrics"):
        load(run_dir)
    assert issubclass(NoMetricsError, FileNotFoundError)


def test_load_many_concatenates_runs_and_refuses_duplicate_names(tmp_path):
    for name in ("a", "b"):
        run_dir, writer = new_run(tmp_path, name)
        writer.append(0, chunk_frame(0))
    df = load_many([tmp_path / "a", tmp_path / "b"])
    assert df["run"].tolist() == ["a"] * 12 + ["b"] * 12
    (tmp_path / "other").mkdir()
    run_dir, writer = new_run(tmp_path / "other", "a")
    writer.append(0, chunk_frame(0))
    with pytest.raises(ValueError, match="'a'"):
        load_many([tmp_path / "a", tmp_path / "other" / "a"])


# ------------------------------------------------------------------ aggregation


def tidy(rows, run="r"):
    df = pd.DataFrame(rows, columns=["seed", "step", "metric", "layer", "value"])
    return df.assign(run=run)


def test_summarize_mean_se_and_n_by_hand():
    nan = float("nan")
    rows = [
        (0, 10, "mse", "", 1.0), (1, 10, "mse", "", 2.0), (2, 10, "mse", "", 3.0),
        (0, 20, "mse", "", 4.0), (1, 20, "mse", "", nan), (2, 20, "mse", "", 6.0),
        (0, 30, "mse", "", 7.0), (1, 30, "mse", "", nan), (2, 30, "mse", "", float("inf")),
        (0, 10, "mse", "hidden_0", 100.0), (0, 10, "accuracy", "", 100.0),
    ]  # fmt: skip
    other = tidy([(0, 10, "mse", "", 5.0), (1, 10, "mse", "", 9.0)], run="q")
    df = pd.concat([tidy(rows), other], ignore_index=True)
    s = summarize(df, "mse")
    assert list(s.columns) == ["run", "step", "mean", "se", "n"]
    assert s["run"].tolist() == ["q", "r", "r", "r"]
    assert s["step"].tolist() == [10, 10, 20, 30]
    np.testing.assert_allclose(s["mean"], [7.0, 2.0, 5.0, 7.0])
    # q: std(5, 9) = 2*sqrt(2); r@10: std(1,2,3) = 1; r@20: std(4, 6) = sqrt(2)
    np.testing.assert_allclose(s["se"][:3], [2.0, 1 / math.sqrt(3), 1.0])
    assert math.isnan(s["se"].iloc[3])
    assert s["n"].tolist() == [2, 3, 2, 1]
    s0 = summarize(df, "mse", layer="hidden_0")
    assert s0["mean"].tolist() == [100.0] and s0["n"].tolist() == [1]
    with pytest.raises(ValueError, match=r"accuracy.*mse"):
        summarize(df, "loss")


def test_early_late_averages_per_seed_then_across_seeds():
    # value = step + seed over steps 1..10; fraction 0.2 -> windows {1, 2} and {9, 10}
    rows = [(s, t, "mse", "", float(t + s)) for s in range(3) for t in range(1, 11)]
    df = tidy(rows)
    df.loc[(df["seed"] == 2) & (df["step"] >= 9), "value"] = np.nan  # seed 2 diverged
    out = early_late(df, "mse", fraction=0.2)
    assert list(out.columns)[:6] == ["run", "early", "early_se", "late", "late_se", "n_seeds"]
    row = out.iloc[0]
    # early per seed: 1.5, 2.5, 3.5; late per seed: 9.5, 10.5 (seed 2 masked)
    assert row["early"] == pytest.approx(2.5)
    assert row["early_se"] == pytest.approx(1 / math.sqrt(3))
    assert row["late"] == pytest.approx(10.0)
    assert row["late_se"] == pytest.approx(math.sqrt(0.5) / math.sqrt(2))
    assert (row["n_seeds"], row["early_n"], row["late_n"]) == (3, 3, 2)


def test_early_late_window_rounds_up_to_whole_steps():
    # 10 steps, fraction 0.25 -> ceil(2.5) = 3 steps: {1, 2, 3} and {8, 9, 10}
    rows = [(0, t, "mse", "", float(t)) for t in range(1, 11)]
    rows += [(1, t, "mse", "", float(t) + 1) for t in range(1, 11)]
    out = early_late(tidy(rows), "mse", fraction=0.25)
    assert out["early"].iloc[0] == pytest.approx(2.5)  # seeds: mean(1,2,3)=2, mean(2,3,4)=3
    assert out["late"].iloc[0] == pytest.approx(9.5)
    assert out["early_se"].iloc[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="fraction"):
        early_late(tidy(rows), "mse", fraction=0.0)
