"""Every ```python block of the README and of docs/**/*.md runs, in order, one namespace per page.

A docs page whose code does not run is a bug. Blocks are executed with the working directory set
to a temporary folder; a block whose first line is ``# docs: skip`` is shown to readers but not run
(use it only for commands that need hardware CI lacks, and say so in the block).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return [b for b in BLOCK.findall(path.read_text()) if not b.startswith("# docs: skip")]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_docs_code_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no python blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - re-raised with the block named
            raise AssertionError(f"{page.relative_to(REPO)} block {i} failed: {err!r}\n{code}") from err


def test_readme_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert "bash scripts/demo.sh" in text and "bash scripts/test.sh" in text
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
