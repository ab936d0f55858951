"""Figure files on Fashion-MNIST: without the data, `lopkit reproduce` stops with a clear
error (what is missing, how to get it) before it runs or writes anything."""

from pathlib import Path

import pytest

from lopkit.cli import main
from lopkit.data import _registry

ROOT = Path(__file__).resolve().parents[1]
FASHION = ("label_permuted_quick", "warmstart_fashion_quick")


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
