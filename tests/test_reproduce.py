"""`lopkit reproduce`: a figure file regenerates its runs, figures and doc blocks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _cli_helpers import run_cli
from lopkit import _reproduce
from lopkit._errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

TINY = """\
title: Tiny
benchmark: scr
run: {seeds: 2, steps: 20000, metrics: [dead, weights]}
methods: [backprop, cbp+l2]
figures:
  - {out: docs/tiny.png, metric: mse}
  - {out: docs/grid.png, panels: [[mse, ""], [dead_fraction, ""]]}
table:
  fraction: 0.2
  columns:
    - {metric: mse, label: error}
    - {metric: dead_fraction, label: dead units, percent: true}
blocks: [docs/a.md, README.md]
"""

DOC = (
    "# A\n\nkept above\n<!-- lopkit:begin tiny -->\nold text\n<!-- lopkit:end tiny -->\n"
    "kept below\n"
)
CELL = r"-?\d+\.\d{3} ± \d+\.\d{3} → -?\d+\.\d{3} ± \d+\.\d{3}"
PERCENT = r"\d+\.\d% ± \d+\.\d% → \d+\.\d% ± \d+\.\d%"


def _repo(tmp_path: Path) -> Path:
    (tmp_path / "figures").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "figures" / "tiny.yaml").write_text(TINY)
    (tmp_path / "docs" / "a.md").write_text(DOC)
    (tmp_path / "README.md").write_text(DOC.replace("# A", "# R"))
    return tmp_path


def test_a_figure_file_regenerates_its_blocks_and_reuses_its_runs(tmp_path):
    root = _repo(tmp_path)
    spec = _reproduce.load_spec(root / "figures" / "tiny.yaml")
    result = _reproduce.reproduce(spec, root=root, runs=root / "runs", log=lambda _: None)
    assert result["changed"] == ["docs/a.md", "README.md"]
    doc = (root / "docs" / "a.md").read_text()
    assert doc.startswith("# A\n\nkept above\n<!-- lopkit:begin tiny -->\n")
    assert doc.endswith("<!-- lopkit:end tiny -->\nkept below\n")
    assert "old text" not in doc
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == ["`backprop`", "`cbp+l2`"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[2:-1]]
        assert re.fullmatch(CELL, cells[0]), cells[0]
        assert re.fullmatch(PERCENT, cells[1]), cells[1]
    # images relative to each doc's folder
    assert "![tiny: mse](tiny.png)" in doc
    assert "![tiny: mse](docs/tiny.png)" in (root / "README.md").read_text()
    assert "2 seeds × 20,000 steps" in doc and "`lopkit reproduce tiny`" in doc
    for name in ("tiny.png", "grid.png"):
        assert (root / "docs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table's numbers are the runs' own: backprop's late error from its metrics
    from lopkit.results import early_late, load

    late = early_late(load(result["runs"]["backprop"]), "mse", fraction=0.2)["late"].iloc[0]
    assert f"→ {late:.3f} ±" in rows[0]
    # a second call reuses the finished runs and changes nothing
    parquet = result["runs"]["cbp+l2"] / "metrics.parquet"
    before = parquet.stat().st_mtime_ns
    again = _reproduce.reproduce(spec, root=root, runs=root / "runs", log=lambda _: None)
    assert again["changed"] == []
    assert parquet.stat().st_mtime_ns == before
    assert (root / "docs" / "a.md").read_text() == doc


def test_missing_block_is_refused_before_anything_runs(tmp_path):
    root = _repo(tmp_path)
    (root / "README.md").write_text("# no block here\n")
    spec = _reproduce.load_spec(root / "figures" / "tiny.yaml")
    with pytest.raises(ConfigError, match="README.md has no block"):
        _reproduce.reproduce(spec, root=root, runs=root / "runs", log=lambda _: None)
    assert not (root / "runs").exists()
    assert (root / "docs" / "a.md").read_text() == DOC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("benchmark: scr", "benchmark: scr\nfigure: x"), "unknown key"),
        (("methods: [backprop, cbp+l2]\n", ""), "needs methods or runs"),
        (("methods: [backprop, cbp+l2]", "methods: [l2, l2]"), "run names repeat"),
        (("metric: mse}", "metric: mse, colour: red}"), "unknown key of figures"),
        (("metric: mse}", "metric: mse, panels: [[mse]]}"), "metric or panels, not both"),
    ],
)
def test_bad_figure_files_say_what_is_wrong(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace(*change, 1))
    with pytest.raises(ConfigError, match=message):
        _reproduce.load_spec(path)


def test_duplicated_markers_are_refused(tmp_path):
    path = tmp_path / "d.md"
    path.write_text(DOC + DOC)
    with pytest.raises(ConfigError, match="exactly one block"):
        _reproduce.rewrite_block(path, "tiny", "x")
    assert path.read_text() == DOC + DOC


def test_the_repository_figure_files_are_valid_and_own_their_blocks():
    """Every checked-in figure file parses, its experiments validate, and each block it
    names is in its doc exactly once; every block in the docs has its figure file."""
    specs = _reproduce.find_specs(REPO / "figures")
    assert {"demo", "permuted_quick", "binary_quick", "control_quick", "ant_quick"} <= set(specs)
    owners: dict[tuple[str, str], str] = {}
    for name, path in specs.items():
        spec = _reproduce.load_spec(path)
        for variant in spec.variants:
            _reproduce.experiment_of(spec, variant)
        if spec.study is not None:  # every cell of its study validates
            from lopkit.sweep import expand
            from lopkit.sweep import load_spec as load_study

            study = load_study(REPO / spec.study)
            expand(study)
            for fig in spec.figures:
                assert set(fig.runs) <= set(study.methods), (name, fig.runs)
        for doc in spec.blocks:
            text = (REPO / doc).read_text()
            assert text.count(f"<!-- lopkit:begin {name} -->") == 1, (doc, name)
            assert text.count(f"<!-- lopkit:end {name} -->") == 1, (doc, name)
            owners[(doc, name)] = name
        for fig in spec.figures:
            assert (REPO / fig.out).is_file(), fig.out
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in _reproduce.blocks_in(doc):
            if doc.name == "performance.md" and block == "bench":
                continue  # written by `make bench`
            assert block in specs, f"{doc.name}: block {block} has no figures/{block}.yaml"


def test_cli_lists_and_refuses_unknown_names(tmp_path, capsys):
    root = _repo(tmp_path)
    code, out, _ = run_cli(capsys, "reproduce", "--figures", str(root / "figures"), "--list")
    assert code == 0 and "tiny" in out and "docs/a.md" in out
    code, _, err = run_cli(capsys, "reproduce", "tinny", "--figures", str(root / "figures"))
    assert code == 2 and "'tiny'" in err


def test_bench_writes_its_output_into_the_bench_block(tmp_path, monkeypatch, capsys):
    from lopkit.bench import _main

    def fake_measure(quick):
        print("slowly-changing regression: 1,234 seed-steps/s")
        return 0

    monkeypatch.setattr(_main, "_measure", fake_measure)
    doc = tmp_path / "performance.md"
    doc.write_text("# P\n<!-- lopkit:begin bench -->\nold\n<!-- lopkit:end bench -->\n")
    assert _main.main(quick=True, write=str(doc)) == 0
    text = doc.read_text()
    assert "1,234 seed-steps/s" in text and "old" not in text
    assert "Machine: " in text and " cores" in text and "jax " in text
    assert "1,234 seed-steps/s" in capsys.readouterr().out  # and on the terminal
    (tmp_path / "none.md").write_text("# no block\n")
    with pytest.raises(ConfigError, match="no block"):
        _main.main(quick=True, write=str(tmp_path / "none.md"))


def test_the_readme_counts_are_the_registries():
    from lopkit.benchmarks import BENCHMARKS
    from lopkit.engine._probes import PROBES
    from lopkit.methods import REMEDIES

    text = (REPO / "README.md").read_text()
    counts = {k: int(n) for n, k in re.findall(r"\*\*(\d+)\*\* (benchmarks|remedies|probes)", text)}
    assert counts == {
        "benchmarks": len(BENCHMARKS),
        "remedies": len(REMEDIES),
        "probes": len(PROBES),
    }


def test_named_runs_with_their_own_settings(tmp_path):
    """`runs:` gives variants of one method (here two step sizes) their own rows and
    directories; a figure may draw a subset."""
    root = _repo(tmp_path)
    (root / "figures" / "lr.yaml").write_text(
        "benchmark: scr\n"
        "run: {seeds: 2, steps: 20000, metrics: []}\n"
        "runs:\n"
        "  - {name: slow, settings: {lr: 0.001}}\n"
        "  - {name: fast, settings: {lr: 0.01}}\n"
        "figures:\n"
        "  - {out: docs/fast.png, runs: [fast], label_key: null, title: ''}\n"
        "table:\n"
        "  columns: [{metric: mse}]\n"
        "blocks: [docs/a.md]\n"
    )
    (root / "docs" / "a.md").write_text(DOC.replace("tiny", "lr"))
    spec = _reproduce.load_spec(root / "figures" / "lr.yaml")
    result = _reproduce.reproduce(spec, root=root, runs=root / "runs", log=lambda _: None)
    from lopkit.results import read_config

    assert read_config(result["runs"]["slow"])["benchmark_config"]["lr"] == 0.001
    assert read_config(result["runs"]["fast"])["benchmark_config"]["lr"] == 0.01
    doc = (root / "docs" / "a.md").read_text()
    assert "| run | mse |" in doc and "| `slow` |" in doc and "| `fast` |" in doc
    assert (root / "docs" / "fast.png").is_file()
    bad = root / "figures" / "bad.yaml"
    bad.write_text(
        (root / "figures" / "lr.yaml").read_text().replace("runs: [fast]", "runs: [quick]")
    )
    with pytest.raises(ConfigError, match="unknown run"):
        _reproduce.load_spec(bad)


STUDY = """\
name: tiny remedies
benchmark: scr
seeds: 4
steps: 20000
run: {metrics: [dead]}
methods:
  backprop: {}
  l2: {l2.weight_decay: [0.0, 0.01]}
  cbp: {}
"""

STUDY_FIGURE = """\
title: Tiny ranking
study: studies/tiny.yaml
report: {select_seeds: 0-1}
table:
  columns:
    - {metric: dead_fraction, label: dead units, percent: true}
figures:
  - {out: docs/rank.png, metric: mse, runs: [backprop, cbp]}
blocks: [docs/a.md]
"""


def test_a_study_figure_file_ranks_each_methods_best_cell(tmp_path):
    """The block ranks the methods by their best cell's stream average on the held-out
    seeds, as the study's report chose it; a second call runs nothing and changes nothing."""
    import pandas as pd

    root = _repo(tmp_path)
    (root / "studies").mkdir()
    (root / "studies" / "tiny.yaml").write_text(STUDY)
    (root / "figures" / "tiny.yaml").write_text(STUDY_FIGURE)
    spec = _reproduce.load_spec(root / "figures" / "tiny.yaml")
    result = _reproduce.reproduce(spec, root=root, runs=root / "runs", log=lambda _: None)
    assert result["changed"] == ["docs/a.md"]
    best = pd.read_csv(root / "runs" / "tiny" / "report.best.csv")
    assert sorted(best["method"]) == ["backprop", "cbp", "l2"]
    doc = (root / "docs" / "a.md").read_text()
    rows = [line.split("|")[1:-1] for line in doc.splitlines() if re.match(r"\| \d+ \|", line)]
    ranked = best.sort_values("auc")  # mse: lower is better
    assert [r[1].strip() for r in rows] == [f"`{m}`" for m in ranked["method"]]
    assert [r[0].strip() for r in rows] == ["1", "2", "3"]
    for row, (_, b) in zip(rows, ranked.iterrows(), strict=True):
        assert row[3].strip() == f"{b.auc:.3f} ± {b.auc_se:.3f}"
        assert re.fullmatch(r"\d+\.\d% ± \d+\.\d%", row[5].strip()), row[5]
    l2_row = next(r for r in rows if r[1].strip() == "`l2`")
    assert re.fullmatch(r"l2\.weight_decay=0\.0(1)?", l2_row[2].strip()), l2_row[2]
    assert "chosen on seeds 0-1 and reported on the others" in doc
    assert "4 seeds × 20,000 steps per cell, 4 cells" in doc
    assert "![tiny: mse](rank.png)" in doc
    assert (root / "runs" / "tiny" / "report.html").is_file()
    marker = next((root / "runs" / "tiny" / "cells").glob("*/metrics.parquet"))
    before = marker.stat().st_mtime_ns
    again = _reproduce.reproduce(spec, root=root, runs=root / "runs", log=lambda _: None)
    assert again["changed"] == [] and marker.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (STUDY_FIGURE + "benchmark: scr\n", "remove benchmark"),
        (STUDY_FIGURE.replace("select_seeds", "pick"), "unknown key of report"),
    ],
)
def test_bad_study_figure_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        _reproduce.load_spec(path)


def test_a_study_figure_names_only_the_studys_methods(tmp_path):
    root = _repo(tmp_path)
    (root / "studies").mkdir()
    (root / "studies" / "tiny.yaml").write_text(STUDY)
    (root / "figures" / "tiny.yaml").write_text(STUDY_FIGURE.replace("cbp]", "sam]"))
    spec = _reproduce.load_spec(root / "figures" / "tiny.yaml")
    with pytest.raises(ConfigError, match="sam"):
        _reproduce.reproduce(spec, root=root, runs=root / "runs", log=lambda _: None)
    assert not (root / "runs").exists()


@pytest.mark.parametrize("higher", [True, False])
def test_a_diverged_cell_is_ranked_after_every_finite_one(higher):
    import numpy as np
    import pandas as pd

    best = pd.DataFrame(
        {
            "method": ["a", "b", "c", "d"],
            "auc": [0.5, 0.9, 0.1, 0.7],
            "final": [0.5, np.nan, 0.2, 0.6],
        }
    )
    ranked = _reproduce.rank_cells(best, higher)["method"].tolist()
    assert ranked == (["d", "a", "c", "b"] if higher else ["c", "a", "d", "b"])
