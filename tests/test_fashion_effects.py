"""The effects on Fashion-MNIST (docs/benchmarks.md): the figure files that need it stop
with a clear error (what is missing, how to get it) before they run or write anything when
it is absent; the quick presets show the sources' direction (slow)."""

from pathlib import Path

import numpy as np
import pytest

from _quick_presets import run_quick_preset
from lopkit.cli import main
from lopkit.data import _registry

ROOT = Path(__file__).resolve().parents[1]
FASHION = ("label_permuted_quick", "warmstart_fashion_quick")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"{DEBIAN_FASHION_MNIST} absent: apt-get install dataset-fashion-mnist to run",
)


@pytest.fixture
def no_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setattr(_registry, "SYSTEM_FASHION_MNIST_DIRS", (tmp_path / "no-system",))
    monkeypatch.setenv("LOPKIT_DATA", str(tmp_path / "empty"))


@pytest.mark.parametrize("name", FASHION)
def test_figure_file_says_it_needs_fashion_mnist(name):
    assert "Fashion-MNIST" in (ROOT / "figures" / f"{name}.yaml").read_text()


@pytest.mark.parametrize("name", FASHION)
def test_reproduce_without_fashion_mnist_names_it_and_how_to_get_it(
    name, no_fashion_mnist, tmp_path, capsys
):
    docs = {d: (ROOT / d).read_text() for d in ("docs/benchmarks.md", "docs/results.md")}
    code = main(["reproduce", name, "--root", str(ROOT), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2
    assert "fashion" in err.lower() and "dataset-fashion-mnist" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.parquet"))
    assert {d: (ROOT / d).read_text() for d in docs} == docs  # no block rewritten


@pytest.mark.slow
@needs_fashion_mnist
def test_label_permuted_quick_backprop_online_accuracy_falls_over_tasks():
    """Elsayed & Mahmood 2024 (UPGD, §4.3): SGD's online accuracy on label-permuted streams
    falls task after task. The quick preset whole (Fashion-MNIST, SGD 0.05, 60 tasks, 10
    seeds; docs/benchmarks.md: 0.41 → 0.18). Cut to 24 tasks every seed fell but the seeds
    spread (tasks 2-5 0.423, tasks 21-24 0.252, 4.8 standard errors): too close to test."""
    _, acc, _ = run_quick_preset("label_permuted", "backprop", metrics="")
    early, late = acc[:, 1:5].mean(1), acc[:, -4:].mean(1)  # [seeds]: tasks 2-5, 57-60
    se = np.hypot(early.std(ddof=1), late.std(ddof=1)) / np.sqrt(acc.shape[0])
    assert early.mean() - late.mean() > 5 * se, (acc.mean(0), se)
