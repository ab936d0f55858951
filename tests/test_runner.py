"""The host loop: time-sized chunks, an early checkpoint, resume that
says where it continues, and Ctrl-C that stops cleanly at the end of a chunk."""

import os
import signal

import numpy as np
import pandas as pd
import pytest

from lopkit._experiment import make_experiment, run_experiment
from lopkit.engine import _checkpoint
from lopkit.engine._runner import execute, next_chunk_bins

SMALL = {"steps": 2_000, "bin_size": 100, "metrics": (), "metrics_every": 0}


@pytest.mark.parametrize(
    "seconds_per_bin, target, remaining, expected",
    [
        (None, 60.0, 100, 1),  # speed unknown: one bin
        (0.5, 60.0, 1000, 64),  # 120 bins fit; the largest power of two below: 64
        (0.5, 60.0, 10, 10),  # never past the end: the remainder
        (100.0, 60.0, 50, 1),  # a bin longer than the target: still one bin
        (2.0, 10.0, 100, 4),  # 5 fit → 4
        (2.5, 10.0, 100, 4),  # exactly 4 fit
    ],
)
def test_next_chunk_bins_by_hand(seconds_per_bin, target, remaining, expected):
    assert next_chunk_bins(seconds_per_bin, target, remaining) == expected


class FakeTime:
    """A program whose chunks take ``per_bin`` seconds per bin on a fake clock, plus
    ``compile`` seconds the first time a chunk size is run; ``hook(call)`` runs in calls."""

    def __init__(self, program, per_bin=2.0, compile=30.0, hook=None):
        self.program, self.per_bin, self.compile, self.hook = program, per_bin, compile, hook
        self.now, self.seen, self.calls = 0.0, set(), 0

    def __getattr__(self, name):
        return getattr(self.program, name)

    def clock(self):
        return self.now

    def chunk(self, state, first_bin, n):
        self.calls += 1
        self.now += n * self.per_bin + (self.compile if n not in self.seen else 0.0)
        self.seen.add(n)
        if self.hook:
            self.hook(self.calls)
        return self.program.chunk(state, first_bin, n)


def _program(seeds=2, method="backprop"):
    e = make_experiment("scr", method, seeds=seeds, **SMALL)
    return e, e.build()[0]


def test_chunks_are_sized_by_time_and_the_first_checkpoint_comes_after_one_bin(tmp_path):
    e, program = _program()
    timed = FakeTime(program, per_bin=2.0, compile=30.0)
    # one bin (compiles), one bin (measures 2 s/bin), then 10 s / 2 s → 4 bins per chunk
    options = {"progress": False, "checkpoint_seconds": 10.0, "clock": timed.clock, "log": None}
    cut = execute(timed, e.seed_ids, 20, tmp_path / "a", stop_after_chunks=1, **options)
    assert cut["chunks"] == [1] and not cut["finished"]
    _, next_bin = _checkpoint.load(tmp_path / "a", program.init(np.arange(2)))
    assert next_bin == 1  # a checkpoint exists as soon as the first bin has run
    timed = FakeTime(program, per_bin=2.0, compile=30.0)
    full = execute(timed, e.seed_ids, 20, tmp_path / "b", **{**options, "clock": timed.clock})
    assert full["chunks"] == [1, 1, 4, 4, 4, 4, 2]
    assert full["finished"]


def test_resume_says_where_it_continues_or_that_it_starts_over(tmp_path):
    e = make_experiment("scr", "cbp", seeds=2, chunk_bins=5, **SMALL)
    said = []
    run_experiment(e, tmp_path / "cut", progress=False, stop_after_chunks=1, log=said.append)
    assert said == []
    run_experiment(e, tmp_path / "cut", resume=True, progress=False, log=said.append)
    assert said == [f"resuming {tmp_path / 'cut'} from step 500 of 2,000"]
    # config.yaml only (an interruption before the first checkpoint): starts over, says so
    run_experiment(e, tmp_path / "early", progress=False, stop_after_chunks=1)
    (tmp_path / "early" / "checkpoint" / "state.npz").unlink()
    said.clear()
    resumed = run_experiment(e, tmp_path / "early", resume=True, progress=False, log=said.append)
    assert said == [f"no checkpoint in {tmp_path / 'early'}: starting over from step 0"]
    assert resumed["bins_run"] == 20 and resumed["finished"]


def _interrupt_at(call):
    def hook(calls):
        if calls == call:
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C while the chunk runs

    return hook


def test_ctrl_c_stops_after_the_chunk_with_a_checkpoint_and_resume_completes(tmp_path):
    e = make_experiment("scr", "cbp", seeds=2, chunk_bins=5, **SMALL)
    program = e.build()[0]
    before = signal.getsignal(signal.SIGINT)
    said = []
    timed = FakeTime(program, hook=_interrupt_at(2))
    cut = execute(timed, e.seed_ids, 20, tmp_path / "cut", chunk_bins=5, progress=False,
                  clock=timed.clock, log=said.append)  # fmt: skip
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    assert cut["interrupted"] and not cut["finished"] and cut["next_step"] == 1_000
    assert any("stopping after the running chunk" in s for s in said)
    assert not (tmp_path / "cut" / "metrics.parquet").exists()
    _, next_bin = _checkpoint.load(tmp_path / "cut", program.init(np.arange(2)))
    assert next_bin == 10
    execute(program, e.seed_ids, 20, tmp_path / "cut", chunk_bins=5, resume=True,
            progress=False, log=None)  # fmt: skip
    execute(program, e.seed_ids, 20, tmp_path / "full", chunk_bins=5, progress=False, log=None)
    a, b = (pd.read_parquet(tmp_path / d / "metrics.parquet") for d in ("full", "cut"))
    np.testing.assert_array_equal(a["step"], b["step"])
    np.testing.assert_allclose(a["value"].to_numpy(), b["value"].to_numpy(), rtol=1e-6)


def test_ctrl_c_during_the_last_chunk_finishes_the_run(tmp_path):
    e, program = _program()
    timed = FakeTime(program, hook=_interrupt_at(4))
    done = execute(timed, e.seed_ids, 20, tmp_path / "r", chunk_bins=5, progress=False,
                   clock=timed.clock, log=None)  # fmt: skip
    assert done["finished"] and not done["interrupted"]
    assert (tmp_path / "r" / "metrics.parquet").exists()
    assert not (tmp_path / "r" / "metrics").exists()
    table = pd.read_parquet(tmp_path / "r" / "metrics.parquet")
    assert table.query("metric == 'mse'").step.max() == 2_000
