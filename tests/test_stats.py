"""The aggregates of Agarwal et al. (2021) through rliable, checked against hand
computations on tiny arrays; score arrays from a metrics table; the per-task view."""

import numpy as np
import pandas as pd
import pytest

from lopkit._errors import ResultsError
from lopkit.results import (
    aggregate_scores,
    final_scores,
    performance_profile,
    probability_of_improvement,
    task_end_scores,
)
from lopkit.results._store import RunWriter, write_config

EIGHT = np.arange(1.0, 9.0)[:, None]  # 8 runs, 1 task: 1, 2, …, 8


def test_iqm_optimality_gap_mean_median_by_hand():
    row = aggregate_scores({"a": EIGHT}, gamma=5, reps=200).iloc[0]
    assert row["iqm"] == pytest.approx(4.5)  # the middle half: 3, 4, 5, 6
    assert row["optimality_gap"] == pytest.approx(5 - (1 + 2 + 3 + 4 + 5 * 4) / 8)  # 1.25
    assert row["mean"] == pytest.approx(4.5) and row["median"] == pytest.approx(4.5)
    assert (row["runs"], row["tasks"]) == (8, 1)
    for stat in ("iqm", "optimality_gap", "mean"):
        assert row[f"{stat}_lo"] <= row[stat] <= row[f"{stat}_hi"]
        assert row[f"{stat}_lo"] < row[f"{stat}_hi"]  # the runs differ: a real interval
    # 12 runs × 2 tasks: the IQM is the trimmed mean of all 24 scores together
    two = np.stack([np.arange(12.0), 100 + np.arange(12.0)], axis=1)
    flat = np.sort(two.ravel())
    assert aggregate_scores({"b": two}, reps=50).iloc[0]["iqm"] == pytest.approx(flat[6:18].mean())


def test_lower_is_better_turns_the_scale_around():
    errors = aggregate_scores({"e": EIGHT}, higher_is_better=False, gamma=5, reps=200).iloc[0]
    assert errors["iqm"] == pytest.approx(4.5)  # the IQM of the errors themselves
    assert errors["optimality_gap"] == pytest.approx((1 + 2 + 3) / 8)  # mean excess over 5
    assert errors["iqm_lo"] <= 4.5 <= errors["iqm_hi"]
    constant = aggregate_scores({"c": np.full((5, 1), 0.3)}, reps=100).iloc[0]
    assert constant["iqm_lo"] == constant["iqm_hi"] == pytest.approx(0.3)


def test_probability_of_improvement_by_hand():
    x = np.array([[1.0], [2.0], [3.0]])
    y = np.array([[0.0], [2.0]])
    # pairs x > y: (1,0) (2,0) (3,0) (3,2); a tie (2,2) counts ½: 4.5 of 6
    p, lo, hi = probability_of_improvement(x, y, reps=300)
    assert p == pytest.approx(4.5 / 6) and lo <= p <= hi
    p_low, _, _ = probability_of_improvement(x, y, higher_is_better=False, reps=50)
    assert p_low == pytest.approx(1.5 / 6)  # x < y: (1,2), and the tie's ½
    # two tasks: the mean of the per-task probabilities (task 2: x always better, 1)
    x2 = np.concatenate([x, x + 10], axis=1)
    y2 = np.concatenate([y, y], axis=1)
    assert probability_of_improvement(x2, y2, reps=50)[0] == pytest.approx((0.75 + 1) / 2)
    with pytest.raises(ResultsError, match="same tasks"):
        probability_of_improvement(x2, y, reps=10)


def test_performance_profile_by_hand():
    profile = performance_profile({"a": [1.0, 2.0, 3.0, 4.0]}, taus=[0, 2.5, 5], reps=100)
    np.testing.assert_allclose(profile["fraction"], [1.0, 0.5, 0.0])
    assert (profile["lo"] <= profile["fraction"]).all() and (
        profile["fraction"] <= profile["hi"]
    ).all()
    below = performance_profile({"a": [1.0, 2.0, 3.0, 4.0]}, taus=[2.5], higher_is_better=False)
    assert below["fraction"].tolist() == [0.5]


def test_non_finite_scores_are_refused():
    with pytest.raises(ResultsError, match="non-finite"):
        aggregate_scores({"a": [1.0, np.nan, 2.0]})


def _table():
    """Two methods × two benchmarks × 3 seeds × 4 steps; value = method + task + seed + step."""
    rows = []
    for m, method in enumerate(("bp", "cbp")):
        for t, bench in enumerate(("scr", "permuted")):
            for seed in range(3):
                for step in (1, 2, 3, 4):
                    value = 100 * m + 10 * t + seed + 0.1 * step
                    rows.append((f"{method}-{bench}", method, bench, seed, step, "mse", "", value))
    columns = ["run", "method", "benchmark", "seed", "step", "metric", "layer", "value"]
    return pd.DataFrame(rows, columns=columns)


def test_final_scores_are_each_seeds_final_window_per_task():
    scores = final_scores(_table(), "mse", by="method", task="benchmark", last=2)
    assert set(scores) == {"bp", "cbp"} and scores["bp"].shape == (3, 2)
    # the mean of steps 3 and 4: seed + 0.35, +10 on the second task, +100 for cbp
    expected = np.arange(3)[:, None] + 0.35 + np.array([[0.0, 10.0]])
    by_task = dict(zip(pd.unique(_table()["benchmark"]), range(2), strict=True))
    np.testing.assert_allclose(scores["bp"][:, [by_task["scr"], by_task["permuted"]]], expected)
    np.testing.assert_allclose(scores["cbp"], scores["bp"] + 100)
    df = _table()
    df.loc[(df.method == "cbp") & (df.seed == 1), "value"] = np.nan  # a diverged seed
    with pytest.raises(ResultsError, match="cbp"):
        final_scores(df, "mse", by="method", task="benchmark")


def test_task_end_scores_take_each_tasks_last_bin(tmp_path):
    run = tmp_path / "perm"
    write_config(run, {"benchmark": "permuted", "report": {"metric": "accuracy",
                       "steps_per_task": 20}, "run": {"seeds": 2}})  # fmt: skip
    steps = np.arange(10, 70, 10)  # bins of 10 steps: two per task, three tasks
    frame = pd.DataFrame(
        [(s, int(t), "accuracy", "", s * 0.1 + t) for s in (0, 1) for t in steps],
        columns=["seed", "step", "metric", "layer", "value"],
    )
    RunWriter(run).append(0, frame)
    ends = task_end_scores(run)
    assert ends["task"].tolist() == [1, 2, 3, 1, 2, 3]
    assert ends["step"].tolist() == [20, 40, 60] * 2
    np.testing.assert_allclose(ends["value"], [20, 40, 60, 20.1, 40.1, 60.1])
    two = task_end_scores(run, last=2)  # the mean of a task's two bins
    np.testing.assert_allclose(two["value"][:3], [15, 35, 55])
    # an RL run: tasks of change_every steps
    rl = tmp_path / "rl"
    write_config(rl, {"benchmark": "control", "report": {"metric": "return"},
                      "benchmark_config": {"change_every": 30}})  # fmt: skip
    RunWriter(rl).append(0, frame.replace({"metric": {"accuracy": "return"}}))
    assert task_end_scores(rl)["task"].tolist() == [1, 2, 1, 2]  # steps 30 and 60 end tasks


def test_the_batched_bootstrap_statistics_are_rliables():
    """The intervals come from all resamples at once: each resample's statistics equal
    rliable's functions applied to it alone."""
    from rliable import metrics

    from lopkit.results._rl_stats import _batched_improvement, _batched_stats

    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 7, 3)).round(1)  # 6 resamples of 7 runs × 3 tasks (with ties)
    y = rng.normal(size=(6, 4, 3)).round(1)
    got = _batched_stats(x, 0.2)
    for r in range(6):
        want = [metrics.aggregate_iqm(x[r]), metrics.aggregate_optimality_gap(x[r], 0.2),
                metrics.aggregate_mean(x[r]), metrics.aggregate_median(x[r])]  # fmt: skip
        np.testing.assert_allclose(got[r], want, rtol=1e-12)
        assert _batched_improvement(x, y)[r] == pytest.approx(
            metrics.probability_of_improvement(x[r], y[r]), rel=1e-12
        )


def test_final_scores_refuse_to_mix_runs_of_one_method():
    df = _table()
    two_cells = pd.concat([df, df.assign(run=df["run"] + "-other", value=df["value"] + 1)])
    with pytest.raises(ResultsError, match="has 2 runs"):
        final_scores(two_cells, "mse", by="method", task="benchmark")
    grid = pd.concat([df.assign(lr=0.1), df.assign(lr=0.3)])  # a swept setting in one run
    with pytest.raises(ResultsError, match="has 2 runs"):
        final_scores(grid[grid.benchmark == "scr"], "mse")
    assert set(final_scores(df[df.benchmark == "scr"], "mse")) == {"bp-scr", "cbp-scr"}
