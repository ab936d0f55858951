"""lopkit export --tensorboard: the event files hold the metrics table's values, read back
from the files' records (TFRecord framing, tensorboardX's Event protobuf)."""

import struct

import numpy as np
import pandas as pd
import pytest
from tensorboardX.proto import event_pb2

from _cli_helpers import run_cli
from lopkit.results import export_tensorboard
from lopkit.results._store import RunWriter, write_config


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), …]} of every event file in ``folder``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            record = data[i + 12 : i + 12 + length]  # after the length and its CRC
            i += 12 + length + 4  # and the record's CRC
            event = event_pb2.Event.FromString(record)
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def _run(tmp_path, swept=False):
    run = tmp_path / "run"
    write_config(run, {"benchmark": "scr", "method": "cbp", "report": {"metric": "mse"}})
    rows = []
    for lr in (0.01, 0.03) if swept else (None,):
        for seed in (0, 1):
            for step in (100, 200):
                value = seed + step / 100 + (lr or 0)
                if seed == 1 and step == 200:
                    value = np.nan  # diverged
                key = {"seed": seed, **({"lr": lr} if swept else {}), "step": step}
                rows.append({**key, "metric": "mse", "layer": "", "value": value})
                rows.append({**key, "metric": "dead_fraction", "layer": "hidden_0", "value": 0.5})
    RunWriter(run, settings=("lr",) if swept else ()).append(0, pd.DataFrame(rows))
    return run


def test_event_files_hold_each_seeds_values_and_the_mean(tmp_path):
    written = export_tensorboard(_run(tmp_path), tmp_path / "tb")
    assert sorted(p.name for p in written) == ["mean", "seed_0", "seed_1"]
    seed0 = read_scalars(tmp_path / "tb" / "seed_0")
    assert set(seed0) == {"mse", "dead_fraction/hidden_0"}
    assert seed0["mse"] == [(100, 1.0), (200, 2.0)]
    assert seed0["dead_fraction/hidden_0"] == [(100, 0.5), (200, 0.5)]
    seed1 = read_scalars(tmp_path / "tb" / "seed_1")["mse"]
    assert seed1[0] == (100, 2.0) and seed1[1][0] == 200 and np.isnan(seed1[1][1])
    mean = dict(read_scalars(tmp_path / "tb" / "mean")["mse"])
    assert mean[100] == pytest.approx(1.5) and mean[200] == pytest.approx(2.0)  # seed 1 out


def test_swept_values_get_a_folder_each_and_the_cli_exports(tmp_path, capsys):
    run = _run(tmp_path, swept=True)
    code, out, err = run_cli(capsys, "export", str(run), "--tensorboard", str(tmp_path / "tb"))
    assert code == 0, err
    assert "6 event folders" in out
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["lr=0.01", "lr=0.03"]
    got = read_scalars(tmp_path / "tb" / "lr=0.03" / "seed_0")["mse"]
    assert [s for s, _ in got] == [100, 200]
    np.testing.assert_allclose([v for _, v in got], [1.03, 2.03], rtol=1e-6)  # float32
    code, _, err = run_cli(capsys, "export", str(run))
    assert code == 2 and "--tensorboard" in err
    code, _, err = run_cli(capsys, "export", str(tmp_path / "none"), "--tensorboard", "x")
    assert code == 2
