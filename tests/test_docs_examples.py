"""The docs' Python examples: every ``python`` block of docs/*.md and README.md parses and
uses only lopkit's public API (no ``lopkit._…``); the blocks marked ``<!-- doc-test: run
-->`` on the line before their fence run, in order, one namespace per file, in a fresh
directory."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- doc-test: run -->\n)?```python\n(.*?)```", re.S)


def blocks(path: Path) -> list[tuple[bool, str]]:
    """(marked to run, code) of each python block of ``path``."""
    text = path.read_text(encoding="utf-8")
    return [(bool(m.group(1)), m.group(2)) for m in BLOCK.finditer(text)]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_doc_blocks_parse_and_use_the_public_api(path):
    for _, code in blocks(path):
        compile(code, str(path), "exec")
        private = re.findall(r"\blopkit(?:\.\w+)*\._\w+", code)
        assert not private, f"{path.name} uses lopkit's internals: {private}"


RUN = [p for p in DOCS if any(marked for marked, _ in blocks(p))]


@pytest.mark.slow  # real runs, each compiled: about 2 minutes on 2 cores
@pytest.mark.parametrize("path", RUN, ids=lambda p: p.name)
def test_doc_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    ran = 0
    for marked, code in blocks(path):
        if marked:
            ran += 1
            exec(compile(code, f"{path.name}, block {ran} marked to run", "exec"), namespace)
    assert ran > 0


def test_the_api_page_is_run():
    assert ROOT / "docs" / "api.md" in RUN
    assert sum(marked for marked, _ in blocks(ROOT / "docs" / "api.md")) >= 6
