"""Plots: files are written where asked, errors name what is available."""

import numpy as np
import pandas as pd
import pytest

from lopkit.results import RunWriter, format_step, load_many, plot_grid, plot_runs, write_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root, name, method, seeds=3, steps=5):
    run_dir = root / name
    write_config(run_dir, {"method": {"name": method}, "seeds": seeds})
    rng = np.random.default_rng(0)
    rows = [
        (seed, step * 10_000, metric, layer, rng.random())
        for seed in range(seeds)
        for step in range(1, steps + 1)
        for metric, layer in (("mse", ""), ("dead_fraction", "hidden_0"))
    ]
    frame = pd.DataFrame(rows, columns=["seed", "step", "metric", "layer", "value"])
    RunWriter(run_dir).append(0, frame)
    return run_dir


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path, "bp", "backprop"), make_run(tmp_path, "cbp", "cbp")]


def is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_plot_runs_writes_a_png_creating_its_directory(tmp_path, runs):
    out = tmp_path / "figs" / "nested" / "mse.png"
    assert plot_runs(runs, "mse", out=out, label_key="method.name", title="SCR") == out
    assert is_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["mse.png"]  # no temp file left


def test_plot_runs_accepts_a_frame_and_defaults_into_the_run_dir(tmp_path, runs):
    out = plot_runs(load_many(runs), "dead_fraction", "hidden_0", out=tmp_path / "d.png", logy=True)
    assert is_png(out)
    default = plot_runs(runs[0], "dead_fraction", "hidden_0")
    assert default == runs[0] / "plots" / "dead_fraction_hidden_0.png" and is_png(default)


def test_plot_runs_unknown_metric_lists_the_available_ones(tmp_path, runs):
    with pytest.raises(ValueError, match=r"'accuracy'.*\['dead_fraction', 'mse'\]"):
        plot_runs(runs, "accuracy", out=tmp_path / "x.png")
    with pytest.raises(ValueError, match="hidden_0"):
        plot_runs(runs, "dead_fraction", out=tmp_path / "x.png")
    with pytest.raises(ValueError, match="optimizer"):
        plot_runs(runs, "mse", out=tmp_path / "x.png", label_key="optimizer")
    assert not (tmp_path / "x.png").exists()


def test_plot_grid_writes_a_row_of_panels(tmp_path, runs):
    out = plot_grid(runs, ["mse", ("dead_fraction", "hidden_0")], out=tmp_path / "g" / "grid.png")
    assert is_png(out)
    with pytest.raises(ValueError, match="effective_rank"):
        plot_grid(runs, [("effective_rank", "hidden_0")], out=tmp_path / "g" / "bad.png")


@pytest.mark.parametrize(
    "x, text",
    [(0, "0"), (500, "500"), (1500, "1.5k"), (250_000, "250k"), (1e6, "1M"), (2.5e6, "2.5M")],
)
def test_format_step(x, text):
    assert format_step(x) == text
