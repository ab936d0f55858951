"""Studies run: the local executor (cells, resume, failures, kill -9), the Ray executor on a
real local cluster, load_study and the report — all on one small study, run once.

Every test here is in one xdist group, so the study is computed by one worker only.
"""

import base64
import csv
import io
import json
import os
import shutil
import signal
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from _study_helpers import SPEC, cell_metrics, kill_driver, start_sweep, write_spec
from lopkit.cli import main
from lopkit.results import load_study, write_report
from lopkit.sweep import expand, parse_spec, sweep

pytestmark = pytest.mark.xdist_group("study")

RELU = {**SPEC, "grid": {"activation": ["relu"]}}


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """The small study run once, 2 cells at a time, uninterrupted. Session-scoped: an xdist
    worker that runs another module's test between two of these tears a module fixture
    down, and this one cost a second 2.5-minute study in a CI run."""
    root = tmp_path_factory.mktemp("study")
    spec = write_spec(root / "study.yaml")
    result = sweep(spec, root / "s", jobs=2, progress=False)
    return spec, root / "s", result


def test_two_jobs_run_every_cell_into_its_directory(study):
    spec, out, result = study
    cells = expand(parse_spec(SPEC))
    assert [c.id for c in result.cells] == [c.id for c in cells]
    assert result.count("done") == 6 and set(result.ran) == {c.id for c in cells}
    for cell in cells:
        run_dir = out / "cells" / cell.id
        assert (run_dir / "DONE").is_file() and (run_dir / "metrics.parquet").is_file()
        done = json.loads((run_dir / "DONE").read_text())
        assert done["metric"] == "mse" and done["seconds"] > 0
        df = cell_metrics(out, cell.id)
        assert sorted(df.seed.unique()) == [0, 1]
        assert df[df.metric == "mse"].step.max() == 4000
    rows = list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text())))
    assert [r["id"] for r in rows] == [c.id for c in cells]
    assert {r["state"] for r in rows} == {"done"}
    assert rows[1]["l2.weight_decay"] == "0.001" and rows[0]["l2.weight_decay"] == ""
    assert (out / "study.yaml").read_text() == spec.read_text()


def test_a_second_sweep_skips_the_done_cells(study, capsys):
    spec, out, _ = study
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/metrics.parquet")}
    code = main(["sweep", str(spec), "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "6 cells: 6 done (0 now, 6 before)" in text
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_load_study_has_a_column_per_swept_setting(study):
    _, out, _ = study
    df = load_study(out)
    assert {"run", "benchmark", "method", "activation", "l2.weight_decay"} <= set(df.columns)
    assert df["run"].nunique() == 6
    l2 = df[df.method == "l2"]
    assert sorted(l2["l2.weight_decay"].unique()) == [0.001, 0.1]
    assert df.loc[df.method == "backprop", "l2.weight_decay"].isna().all()
    assert set(df.activation) == {"relu", "tanh"}
    assert set(df.metric) >= {"mse", "dead_fraction", "effective_rank"}


def test_a_failing_cell_is_recorded_and_the_others_finish(study, tmp_path, capsys):
    """A changed spec adds cells and keeps the old; one new cell fails, its sibling runs;
    a failed cell is rerun only with --retry-failed."""
    _, done_study, _ = study
    out = tmp_path / "s"
    shutil.copytree(done_study, out)
    spec = {**SPEC, "methods": {**SPEC["methods"], "l2": {"l2.weight_decay": [1e-3, 1e-1, 1e-2]}}}
    spec = {**spec, "grid": {"activation": ["relu", "tanh"]}}
    spec_path = write_spec(tmp_path / "study.yaml", spec)
    new = [c for c in expand(parse_spec(spec)) if not (out / "cells" / c.id).exists()]
    assert len(new) == 2
    broken = out / "cells" / new[0].id
    broken.mkdir()
    (broken / "config.yaml").write_text("- not a config\n")  # a corrupt run directory
    code = main(["sweep", str(spec_path), "--out", str(out), "--jobs", "2", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 1
    assert "8 cells: 7 done (1 now, 6 before), 1 failed" in text and "--retry-failed" in text
    failed = json.loads((broken / "FAILED").read_text())
    assert "does not hold a mapping" in failed["error"] and not (broken / "DONE").exists()
    manifest = (out / "manifest.csv").read_text()
    assert "does not hold a mapping" in manifest
    assert (out / "cells" / new[1].id / "DONE").is_file()
    page = write_report(out)[0].read_text()  # the report lists the failed cell, its error
    assert "7 done, 1 failed" in page and "does not hold a mapping" in page
    # without --retry-failed the failed cell is left alone
    assert main(["sweep", str(spec_path), "--out", str(out), "--no-progress"]) == 1
    assert "0 now, 7 before" in capsys.readouterr().out
    (broken / "config.yaml").unlink()
    assert (
        main(["sweep", str(spec_path), "--out", str(out), "--retry-failed"] + ["--no-progress"])
        == 0
    )
    assert "8 done (1 now, 7 before)" in capsys.readouterr().out
    # the cells an older spec held are kept, and loaded when asked for
    write_spec(spec_path, {**spec, "methods": {"backprop": {}}})
    assert main(["sweep", str(spec_path), "--out", str(out), "--no-progress"]) == 0
    assert load_study(out)["run"].nunique() == 2
    assert load_study(out, include_removed=True)["run"].nunique() == 8


@pytest.mark.slow
def test_kill_9_of_the_driver_then_resume_equals_an_uninterrupted_study(
    study, tmp_path, monkeypatch
):
    _, reference, _ = study
    # compiled as the reference study's cells were (the suite's default, tests/conftest.py;
    # a slow test's own default is optimized): the comparison below is exact
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    spec = write_spec(tmp_path / "study.yaml", RELU)  # 3 of the study's cells: same ids

    def half_way(out):
        cells = list((out / "cells").glob("*")) if (out / "cells").exists() else []
        return [c for c in cells if (c / "checkpoint").exists() and not (c / "DONE").exists()]

    # A half-way cell can still finish between the poll that sees it and the kill (seen once
    # in a fast spell of this machine): then the run is tried again, up to three times.
    for attempt in range(3):
        out = tmp_path / f"s{attempt}"
        proc = start_sweep(spec, out, "--jobs", "2", "--no-progress")
        deadline = time.time() + 300
        while time.time() < deadline:  # kill once a cell is done and another is half-way
            done = list(out.glob("cells/*/DONE"))
            if done and half_way(out):
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        kill_driver(proc)
        if half_way(out):
            break
    assert half_way(out), "in three tries the half-way cell finished before the kill"
    done_before = {c.name for c in (out / "cells").glob("*") if (c / "DONE").exists()}
    for cid in done_before:  # nothing counted done is half-written
        assert cell_metrics(out, cid).equals(cell_metrics(reference, cid))
    result = sweep(spec, out, jobs=2, progress=False)
    assert result.count("done", "before") == len(done_before)
    assert result.count("interrupted", "before") >= 1
    assert set(result.ran) == {c.id for c in result.cells} - done_before
    assert any(m["resumed"] for m in result.ran.values())  # resumed from a checkpoint
    assert result.count("done") == 3
    for cell in result.cells:
        pd.testing.assert_frame_equal(cell_metrics(out, cell.id), cell_metrics(reference, cell.id))


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.links, self.text = [], 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self.tables += 1
        for key in ("href", "src"):
            if key in attrs and not attrs[key].startswith("data:"):
                self.links.append(attrs[key])
        if tag in ("script", "link"):
            self.links.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_one_self_contained_page_with_tables_and_figures(study, tmp_path):
    _, out, _ = study
    paths = write_report(out, out=tmp_path / "r" / "report.html", ci="bootstrap")
    assert [p.name for p in paths] == [
        "report.html",
        "report.cells.csv",
        "report.best.csv",
        "report.curves.csv",
    ]
    page = _Page()
    page.feed(paths[0].read_text())
    text = " ".join(page.text)
    assert page.links == []  # nothing to fetch: no scripts, stylesheets or links
    for name in ("backprop", "l2", "activation=relu", "activation=tanh", "l2.weight_decay"):
        assert name in text
    assert page.tables >= 2 and "95% bootstrap" in text
    alts = [img["alt"] for img in page.images]
    # learning curves and probes per condition; sensitivity to l2.weight_decay per condition
    assert sum(a.startswith("learning curves") for a in alts) == 2
    assert sum(a.startswith("probes") for a in alts) == 2
    assert sum(a.startswith("sensitivity") and "l2.weight_decay" in a for a in alts) == 2
    for img in page.images:
        head, _, data = img["src"].partition(",")
        assert head == "data:image/png;base64"
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0
    cells = pd.read_csv(paths[1])
    assert len(cells) == 6 and (cells["auc_lo"] <= cells["auc"]).all()
    assert (cells["auc"] <= cells["auc_hi"]).all() and cells["selected"].sum() == 4
    best = pd.read_csv(paths[2])
    assert sorted(zip(best.condition, best.method, strict=True)) == [
        ("activation=relu", "backprop"),
        ("activation=relu", "l2"),
        ("activation=tanh", "backprop"),
        ("activation=tanh", "l2"),
    ]
    l2 = cells[(cells.method == "l2") & (cells.activation == "relu")]
    chosen = best[(best.method == "l2") & (best.condition == "activation=relu")]
    assert chosen["run"].item() == l2.loc[l2["auc"].idxmin(), "run"]  # mse: lower is better
    assert set(pd.read_csv(paths[3])["run"]) == set(cells["run"])


def test_report_on_held_out_selection_seeds(study, tmp_path, capsys):
    _, out, _ = study
    html = tmp_path / "r.html"
    code = main(["report", str(out), "--out", str(html), "--select-seeds", "0", "--last", "2"])
    assert code == 0, capsys.readouterr().err
    text = html.read_text()
    assert "held-out seeds 0" in text and "last 2 bins" in text
    cells = pd.read_csv(tmp_path / "r.cells.csv")
    assert (cells["n_seeds"] == 1).all()  # reported on seed 1 only
    code = main(["report", str(out), "--out", str(html), "--select-seeds", "0-1"])
    assert code == 2 and "leaves no seeds" in capsys.readouterr().err


# ------------------------------------------------------------------ Ray


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("transfer", [False, True], ids=["shared-path", "sent-to-driver"])
def test_ray_executor_gives_the_local_results(study, cluster, tmp_path, transfer):
    """Two of the study's cells as Ray tasks: the same ids and the same metrics."""
    _, reference, _ = study
    small = {**RELU, "methods": {"backprop": {}, "l2": {"l2.weight_decay": [1e-3]}}}
    spec = write_spec(tmp_path / "study.yaml", small)
    out = tmp_path / "s"
    result = sweep(spec, out, executor="ray", transfer=transfer, progress=False)
    assert result.count("done") == 2 and len(result.ran) == 2
    for cell in result.cells:
        done = json.loads((out / "cells" / cell.id / "DONE").read_text())
        assert done.get("transferred", False) == transfer
        pd.testing.assert_frame_equal(cell_metrics(out, cell.id), cell_metrics(reference, cell.id))
    again = sweep(spec, out, executor="ray", progress=False)
    assert again.ran == {} and again.count("done", "before") == 2


def _ray_task_pids(name: str) -> list[int]:
    """Processes whose title is Ray's ``ray::<name>`` (a worker running that task)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(
                b"ray::" + name.encode()
            ):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_ray_task_whose_worker_dies_is_retried_and_resumes(cluster, tmp_path):
    # 200 one-bin chunks: a run long enough to be killed half-way on a fast machine too
    one = {**RELU, "steps": 200_000, "methods": {"backprop": {}}}
    spec = write_spec(tmp_path / "study.yaml", one)
    out = tmp_path / "s"
    results = []
    driver = threading.Thread(
        target=lambda: results.append(sweep(spec, out, executor="ray", progress=False))
    )
    driver.start()
    deadline = time.time() + 300
    while time.time() < deadline and not (pids := _ray_task_pids("cell_task")):
        time.sleep(0.01)
    while time.time() < deadline and not list(out.glob("cells/*/checkpoint/state.npz")):
        time.sleep(0.005)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)  # the worker dies half-way through the cell
    driver.join(timeout=300)
    (result,) = results
    (marker,) = result.ran.values()
    assert marker["state"] == "done" and marker["resumed"]  # retried, from the checkpoint
    (cell,) = result.cells
    mse = cell_metrics(out, cell.id).query("metric == 'mse'")
    assert sorted(mse.step.unique()) == list(range(1000, 200_001, 1000))
    assert len(mse) == 2 * 200 and mse.value.notna().all()
