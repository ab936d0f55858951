"""Plots: files are written where asked, errors name what is available."""

import numpy as np
import pandas as pd
import pytest

from lopkit.results import format_step, load_many, plot_grid, plot_runs
from lopkit.results._store import RunWriter, write_config

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
    fig = plot_runs(runs, "mse", out=out, label_key="method.name", title="SCR")
    assert fig.axes[0].get_title() == "SCR" and is_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["mse.png"]  # no temp file left


def test_plot_runs_accepts_a_frame_and_defaults_into_the_run_dir(tmp_path, runs):
    plot_runs(load_many(runs), "dead_fraction", "hidden_0", out=tmp_path / "d.png", logy=True)
    assert is_png(tmp_path / "d.png")
    plot_runs(runs[0], "dead_fraction", "hidden_0")
    assert is_png(runs[0] / "plots" / "dead_fraction_hidden_0.png")


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


# ---- defaults and labels that say what is drawn ------------------------------------


def task_run(root, name, benchmark="permuted", values=None):
    """2 seeds, bins of 10 steps, tasks of 20 steps (2 bins): 4 tasks of accuracy."""
    run_dir = root / name
    write_config(run_dir, {"benchmark": benchmark, "method": "backprop",
                           "run": {"seeds": 2, "bin_size": 10},
                           "report": {"metric": "accuracy", "steps_per_task": 20}})  # fmt: skip
    values = values if values is not None else np.arange(16, dtype=float).reshape(2, 8)
    rows = [
        (seed, 10 * (b + 1), "accuracy", "", values[seed, b]) for seed in range(2) for b in range(8)
    ]
    rows += [(seed, 40, "effective_rank", layer, 3.0) for seed in range(2)
             for layer in ("hidden_0", "hidden_1", "")]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["seed", "step", "metric", "layer", "value"])
    RunWriter(run_dir).append(0, frame)
    return run_dir


def test_default_metric_is_the_runs_reported_one_on_a_task_axis(tmp_path):
    from lopkit.results import read_config
    from lopkit.results._plot import _on_tasks

    run = task_run(tmp_path, "p")
    plot_runs(run)
    assert is_png(run / "plots" / "accuracy.png")
    df = load_many([run]).query("metric == 'accuracy'")
    configs = {"p": read_config(run)}
    on_tasks = _on_tasks(df, configs, "task", None)
    assert sorted(on_tasks.task.unique()) == [1, 2, 3, 4]  # two bins per task
    # --bin-tasks 2: each seed's mean over tasks 1–2 (bins 1–4) and 3–4 (bins 5–8)
    binned = _on_tasks(df, configs, "task", 2).sort_values(["seed", "task"])
    assert binned.task.tolist() == [2, 4, 2, 4]
    np.testing.assert_allclose(binned.value, [1.5, 5.5, 9.5, 13.5])
    plot_runs(run, x="task", bin_tasks=2, out=tmp_path / "b.png")
    assert is_png(tmp_path / "b.png")
    with pytest.raises(ValueError, match="bin_tasks needs x='task'"):
        plot_runs(run, x="step", bin_tasks=2, out=tmp_path / "c.png")


def test_labels_say_what_is_averaged_and_which_layer(tmp_path):
    from lopkit.results._describe import metric_label, y_label
    from lopkit.results._plot import _caption

    layers = ["", "hidden_0", "hidden_1"]
    assert (
        metric_label("effective_rank", "", layers)
        == "Effective rank (hidden_1: the last hidden layer)"
    )
    assert metric_label("dead_fraction", "", layers) == "Fraction of dead units (all hidden layers)"
    assert metric_label("ntk_rank", "") == "NTK rank" and metric_label("mystery", "") == "mystery"
    config = {"run": {"bin_size": 20}, "report": {"metric": "accuracy", "steps_per_task": 20}}
    assert (
        y_label("accuracy", "", [""], config, "task", None)
        == "Online accuracy (mean over each task)"
    )
    assert "averaged over 50 tasks" in y_label("accuracy", "", [""], config, "task", 50)
    scr = {"run": {"bin_size": 10_000}, "report": {"metric": "mse"}}
    assert (
        y_label("mse", "", [""], scr, "step", None) == "Mean squared error (mean over 10,000 steps)"
    )
    run = task_run(tmp_path, "p")
    from lopkit.results import read_config

    caption = _caption({"p": read_config(run)}, load_many([run]))
    assert caption == "permuted: mean ± standard error over 2 seeds"


def test_overlaying_benchmarks_warns_and_no_finite_values_is_refused(tmp_path):
    a = task_run(tmp_path, "a")
    b = task_run(tmp_path, "b", benchmark="binary")
    with pytest.warns(UserWarning, match="different benchmarks"):
        plot_runs([a, b], out=tmp_path / "ab.png")
    nan = task_run(tmp_path, "nan", values=np.full((2, 8), np.nan))
    with pytest.raises(ValueError, match="no finite values"):
        plot_runs(nan, out=tmp_path / "nan.png")
    assert not (tmp_path / "nan.png").exists()


def test_plot_runs_draws_on_given_axes_and_returns_their_figure(tmp_path, runs):
    from matplotlib.figure import Figure

    fig = Figure()
    left, right = fig.subplots(1, 2)
    got = plot_runs(runs, "mse", ax=right, label_key="method.name")
    assert got is fig and not left.lines and len(right.lines) == 2
    assert not list(tmp_path.rglob("*.png"))  # with ax and no out: nothing saved
    plot_runs(runs, "mse", ax=left, out=tmp_path / "both.png")
    assert len(left.lines) == 2 and is_png(tmp_path / "both.png")
