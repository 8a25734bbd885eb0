"""Every chapter's MyST source and its executed notebook agree, and the notebook really stores outputs."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_chapters():
    assert CHAPTERS, "no chapters/*.md found"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_markdown_and_notebook_are_in_sync(md: Path):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{md.name} has no paired notebook: run `make chapter NB={md.with_suffix('')}`"
    source, executed = jupytext.read(md), jupytext.read(ipynb)
    assert _cells(source) == _cells(executed), (
        f"{ipynb.name} is out of date with {md.name}: edit the .md, then `make chapter NB=chapters/{md.stem}`"
    )


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_every_code_cell_has_stored_outputs(md: Path):
    nb = jupytext.read(md.with_suffix(".ipynb"))
    code = [c for c in nb.cells if c.cell_type == "code"]
    missing = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not missing, f"{md.stem}: code cells {missing} were never executed, so nbval would compare nothing"
    assert any(c.outputs for c in code), f"{md.stem}: no stored outputs at all"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_literalincludes_point_at_real_code(md: Path):
    """A chapter shows the package's code, so the file and the object it names must exist."""
    text = md.read_text(encoding="utf-8")
    for path, options in re.findall(r"```\{literalinclude\}\s+(\S+)\n((?::[^\n]*\n)*)", text):
        target = (md.parent / path).resolve()
        assert target.exists(), f"{md.name}: literalinclude of missing file {path}"
        match = re.search(r":pyobject:\s*(\S+)", options)
        if match:
            name = match.group(1).split(".")[-1]
            assert re.search(rf"^\s*(def|class)\s+{re.escape(name)}\b", target.read_text(), re.M), (
                f"{md.name}: {path} has no def/class {match.group(1)}"
            )
