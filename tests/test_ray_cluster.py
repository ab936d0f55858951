"""The Ray executor on a real two-node cluster on this machine (``ray.cluster_utils.Cluster``:
a head node and a worker node, each a raylet of its own with 1 CPU, so the two cells of the
study run one on each node): cells run on both nodes, with and without a shared path, and
a study whose worker node is killed half-way completes on the head node, its lost cell
resumed from its checkpoint, with the results of a local run.

On one machine every node sees the study directory; ``transfer=True`` (``--no-shared-path``)
makes the tasks work as on nodes that do not: in a temporary directory of their node, their
files (checkpoints included) sent to the driver's node.
"""

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

from _study_helpers import cell_metrics, write_spec
from lopkit.sweep import sweep

# one worker runs every Ray test (test_sweep_run.py too): two clusters at once would share 2 cores
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("study")]

# 2 cells, 2 seeds; 1,000-step bins, a chunk (and checkpoint) per bin: long enough that
# the worker node can be killed with both cells half-way
SPEC = {
    "name": "two-node study",
    "benchmark": "scr",
    "seeds": 2,
    "steps": 400_000,
    "run": {"bin_size": 1000, "metrics_every": 1000, "chunk_bins": 1},
    "grid": {"activation": ["relu"]},
    "methods": {"backprop": {}, "l2": {"l2.weight_decay": [1e-3]}},
}
# compiled alike by the Ray workers and by the local reference's cell processes (which
# inherit this from the test process), so the comparison is exact
ENV = {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}
# the GCS declares a node dead after 3 failed health checks 0.5 s apart (default: 5 × 3 s)
FAST_NODE_DEATH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study run by the local executor, 2 cells at a time."""
    root = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENV.items():
            mp.setenv(name, value)
        result = sweep(write_spec(root / "study.yaml", SPEC), root / "s", jobs=2, progress=False)
    assert result.count("done") == 2
    return root / "s"


@pytest.fixture(scope="module")
def temp_dirs():
    """The clusters' temp dirs, removed at the end (a Ray process may still write one
    after its cluster's shutdown)."""
    dirs = []
    yield dirs
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(monkeypatch, temp_dirs):
    """A head node and a worker node, 1 CPU each, this process connected as the driver."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    for name, value in ENV.items():  # the raylets and their workers inherit it
        monkeypatch.setenv(name, value)
    # a short temp dir of its own (Ray's socket paths must be short); Cluster would also
    # record itself as this machine's current cluster (/tmp/ray/ray_current_cluster), where
    # a concurrent ray.init() would find and join it: not done
    temp = tempfile.mkdtemp(prefix="lopkit-ray-")
    temp_dirs.append(temp)
    node = {"num_cpus": 1, "temp_dir": temp, "include_dashboard": False}
    with mock.patch("ray._private.utils.write_ray_address"):
        c = Cluster(
            initialize_head=True, head_node_args={**node, "_system_config": FAST_NODE_DEATH}
        )
    try:
        worker = c.add_node(**node)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        yield c, c.head_node, worker
    finally:
        ray.shutdown()
        c.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def markers(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("cells/*/DONE")}


def assert_same_metrics(out: Path, reference: Path) -> None:
    for cid in markers(reference):
        pd.testing.assert_frame_equal(
            cell_metrics(out, cid), cell_metrics(reference, cid), check_exact=True
        )


@pytest.mark.parametrize("transfer", [False, True], ids=["shared-path", "sent-to-driver"])
def test_cells_run_on_both_nodes(cluster, reference, tmp_path, transfer):
    _, head, worker = cluster
    out = tmp_path / "s"
    began = time.perf_counter()
    result = sweep(
        write_spec(tmp_path / "study.yaml", SPEC),
        out,
        executor="ray",
        transfer=transfer,
        progress=False,
    )
    print(f"\n2 cells on 2 nodes, transfer={transfer}: {time.perf_counter() - began:.1f} s")
    assert result.count("done") == 2
    done = markers(out)
    assert {m["node"] for m in done.values()} == {head.node_id, worker.node_id}
    assert all(m.get("transferred", False) == transfer for m in done.values())
    assert_same_metrics(out, reference)


def half_way(out: Path) -> list[Path]:
    """The cells with a checkpoint in the study directory and no marker."""
    return [
        c
        for c in out.glob("cells/*")
        if (c / "checkpoint" / "state.npz").is_file() and not (c / "DONE").exists()
    ]


@pytest.mark.parametrize("transfer", [False, True], ids=["shared-path", "sent-to-driver"])
def test_a_study_survives_the_death_of_a_node(cluster, reference, tmp_path, transfer):
    c, head, worker = cluster
    out = tmp_path / "s"
    spec = write_spec(tmp_path / "study.yaml", SPEC)
    results = []
    driver = threading.Thread(
        target=lambda: results.append(
            sweep(spec, out, executor="ray", transfer=transfer, progress=False)
        )
    )
    began = time.perf_counter()
    driver.start()
    deadline = time.time() + 120
    while time.time() < deadline and len(half_way(out)) < 2:  # both cells checkpointed
        time.sleep(0.05)
    assert len(half_way(out)) == 2 and not markers(out)
    c.remove_node(worker, allow_graceful=False)  # the worker node's raylet and workers die
    killed = time.perf_counter() - began
    driver.join(timeout=240)
    took = time.perf_counter() - began
    print(f"\nnode killed at {killed:.1f} s, study done at {took:.1f} s, transfer={transfer}")
    (result,) = results
    assert result.count("done") == 2
    done = markers(out)
    assert {m["node"] for m in done.values()} == {head.node_id}  # all ran on the survivor
    resumed = [cid for cid, m in result.ran.items() if m["resumed"]]
    assert len(resumed) == 1  # the worker node's cell, retried from its checkpoint
    # without a shared path the checkpoint it resumed from came from the driver's node
    assert all(m.get("transferred", False) == transfer for m in done.values())
    assert_same_metrics(out, reference)
