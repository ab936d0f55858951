"""lopkit report's statistics section, on a study written by hand (two methods × two
conditions × 5 seeds, known final values)."""

import json

import pandas as pd

from _cli_helpers import run_cli
from lopkit.results._store import RunWriter, write_config
from lopkit.results._study import write_marker

OFFSET = {"bp": 0.5, "cbp": 0.8}  # accuracy = offset + 0.01 · seed, on every step
CONDITIONS = {"relu": 0.0, "tanh": 0.1}


def _study(root, seeds=5, metric="accuracy"):
    cells = {}
    for method in OFFSET:
        for activation, shift in CONDITIONS.items():
            cid = f"{method}-{activation}"
            swept = {"method": method, "activation": activation}
            cells[cid] = {"benchmark": "permuted", "method": method, "swept": swept,
                          "label": cid, "in_spec": True}  # fmt: skip
            run = root / "cells" / cid
            write_config(run, {"benchmark": "permuted", "method": method,
                               "report": {"metric": metric, "steps_per_task": 20},
                               "run": {"seeds": seeds}})  # fmt: skip
            rows = [
                (s, step, metric, "", OFFSET[method] + shift + 0.01 * s + 0.001 * step / 10)
                for s in range(seeds) for step in range(10, 70, 10)
            ]  # fmt: skip
            writer = RunWriter(run)
            writer.append(
                0, pd.DataFrame(rows, columns=["seed", "step", "metric", "layer", "value"])
            )
            writer.finalize()
            write_marker(run, "DONE", {"metric": metric})
    registry = {"name": "by hand", "swept_keys": ["method", "activation"],
                "condition_keys": ["activation"], "cells": cells}  # fmt: skip
    (root / "cells.json").write_text(json.dumps(registry))
    (root / "study.yaml").write_text("name: by hand\n")
    return root


def test_the_report_shows_iqm_improvement_and_profiles_from_five_seeds(tmp_path, capsys):
    study = _study(tmp_path / "s")
    code, out, err = run_cli(capsys, "report", str(study), "--last", "1")
    assert code == 0, err
    page = (study / "report.html").read_text()
    assert "Statistics over seeds" in page and "performance profile" in page
    assert "end of each task" in page  # the per-task figure
    stats = pd.read_csv(study / "report.statistics.csv")
    row = stats[(stats.method == "cbp") & (stats.condition == "activation=tanh")].iloc[0]
    # final (last bin, step 60) of seeds 0–4: 0.8 + 0.1 + 0.006 + 0.01·s; the IQM of five
    # values drops one at each end: the middle three, mean 0.906 + 0.02
    assert abs(row["iqm"] - 0.926) < 1e-12
    assert abs(row["mean"] - 0.926) < 1e-12
    assert abs(row["optimality_gap"] - (1 - 0.926)) < 1e-12  # accuracy: target 1
    assert f"{0.926:.4g} [" in page
    improvement = pd.read_csv(study / "report.improvement.csv")
    wins = improvement[(improvement.x == "cbp") & (improvement.y == "bp")]
    assert len(wins) == 2 and (wins["p"] == 1.0).all()  # every cbp seed beats every bp seed
    assert ((improvement.x == "bp") & (improvement.p == 0.0)).sum() == 2
    across = stats[stats.condition == "all (normalized)"]
    assert sorted(across.method) == ["bp", "cbp"] and (across.tasks == 2).all()
    assert "report.statistics.csv" in out


def test_fewer_than_five_seeds_and_no_rl_metric_show_no_statistics(tmp_path, capsys):
    study = _study(tmp_path / "s", seeds=3)
    code, out, err = run_cli(capsys, "report", str(study))
    assert code == 0, err
    assert "Statistics over seeds" not in (study / "report.html").read_text()
    assert not (study / "report.statistics.csv").exists()
    rl = _study(tmp_path / "rl", seeds=3, metric="return")  # an RL metric: shown from 3 seeds
    code, out, err = run_cli(capsys, "report", str(rl))
    assert code == 0, err
    page = (rl / "report.html").read_text()
    assert "Statistics over seeds" in page and "optimality gap</th>" in page
