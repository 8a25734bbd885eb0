"""Every glued name the prose of a chapter refers to is produced by a stored output of that chapter's notebook.

The prose quotes computed numbers as `{glue:text}`name`` (myst-nb); the value comes from a `glue_text(name, ...)`
output stored in the executed .ipynb. A name that no cell produces renders as nothing in the book (with -W, as a
failed build), so this test names the chapter and the missing name first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))

# {glue}`name`, {glue:text}`name:.2f`, {glue:any}`name` ... and the ```{glue:figure} name directive.
ROLE = re.compile(r"\{glue(?::(?:any|text|md|figure|math))?\}`([^`]+)`")
DIRECTIVE = re.compile(r"^\s*(?:```+|:::+)\s*\{glue(?::(?:any|figure|math|md))?\}\s+(\S+)", re.M)


def referenced_names(md_text: str) -> set[str]:
    """Names the Markdown refers to (the part before an optional `:format`; other documents' names skipped)."""
    names = set()
    for match in ROLE.finditer(md_text):
        target = match.group(1)
        if "::" in target:
            continue
        names.add(target.split(":", 1)[0].strip())
    names.update(m.group(1) for m in DIRECTIVE.finditer(md_text) if "::" not in m.group(1))
    return names


def glued_names(notebook: dict) -> set[str]:
    """Names glued by the notebook's stored outputs (myst-nb's `scrapbook` output metadata)."""
    names = set()
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook")
            if scrapbook and "name" in scrapbook:
                names.add(scrapbook["name"])
    return names


def test_roles_are_found():
    text = "Loss {glue:text}`ch11-bpb` and {glue:text}`ch11-x:.2f`, {glue}`ch11-y`.\n```{glue:figure} ch11-fig\n```"
    assert referenced_names(text) == {"ch11-bpb", "ch11-x", "ch11-y", "ch11-fig"}


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_glued_name_is_produced(md: Path):
    wanted = referenced_names(md.read_text(encoding="utf-8"))
    if not wanted:
        pytest.skip(f"{md.stem} glues no values")
    notebook_path = md.with_suffix(".ipynb")
    assert notebook_path.exists(), f"{md.stem}: the prose glues values but {notebook_path.name} is missing"
    produced = glued_names(json.loads(notebook_path.read_text(encoding="utf-8")))
    missing = sorted(wanted - produced)
    assert not missing, (
        f"{md.stem}: the prose refers to glued value(s) that no stored output of {notebook_path.name} produces: "
        f"{', '.join(missing)} (glue them with booktools.glue_text in the cell that computes them and "
        f"re-execute the chapter: make chapter NB=chapters/{md.stem})"
    )
