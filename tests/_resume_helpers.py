"""Shared by the tests that kill a run after two chunks and resume it."""

import numpy as np

from lopkit._experiment import run_experiment
from lopkit.results import load


def run_cut_and_resumed(experiment, tmp_path, rtol: float = 0.0):
    """Run ``experiment`` whole into ``tmp_path/full``, and into ``tmp_path/cut`` stopped
    after two chunks and then resumed; assert the two tables have the same rows, steps and
    values (bit for bit unless ``rtol``). Returns the uninterrupted run's table."""
    run_experiment(experiment, tmp_path / "full", progress=False)
    partial = run_experiment(experiment, tmp_path / "cut", progress=False, stop_after_chunks=2)
    assert not partial["finished"]
    run_experiment(experiment, tmp_path / "cut", resume=True, progress=False)
    full, cut = load(tmp_path / "full"), load(tmp_path / "cut")
    assert len(full) == len(cut)
    np.testing.assert_array_equal(full["step"], cut["step"])
    if rtol:
        np.testing.assert_allclose(full["value"].to_numpy(), cut["value"].to_numpy(), rtol=rtol)
    else:
        np.testing.assert_array_equal(full["value"].to_numpy(), cut["value"].to_numpy())
    return full
