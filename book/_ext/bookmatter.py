"""Book structure the table of contents cannot express.

- `\\appendix` before the first appendix (`bookmatter_appendix_start`), so LaTeX numbers it "Appendix A"
  rather than as one more chapter.
- The "Hints and solutions" appendix (`book/solutions.md`) includes every `book/solutions/*.md` that exists at
  build time, in file-name (chapter) order; the chapter authors write those files.
- The PDF's list of tables (of figures) is printed only when the book has a numbered table (figure).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from docutils import nodes

SOLUTIONS_DOC = "book/solutions"


def solution_files(srcdir: str | Path) -> list[Path]:
    """The per-chapter solution files, in chapter order."""
    return sorted((Path(srcdir) / "book" / "solutions").glob("*.md"))


def _on_source_read(app, docname, source) -> None:
    if docname != SOLUTIONS_DOC:
        return
    includes = []
    for path in solution_files(app.srcdir):
        app.env.note_dependency(str(path))
        includes.append(f"\n```{{include}} solutions/{path.name}\n```\n")
    source[0] = source[0].rstrip("\n") + "\n" + "".join(includes)


def _on_env_get_outdated(app, env, added, changed, removed):
    # A new solutions file changes the appendix even though book/solutions.md itself did not change.
    return [SOLUTIONS_DOC] if SOLUTIONS_DOC in env.found_docs else []


def _on_doctree_read(app, doctree) -> None:
    if app.env.docname == app.config.bookmatter_appendix_start:
        doctree.insert(0, nodes.raw("", "\\appendix\n", format="latex"))


def _on_env_get_updated(app, env):
    # A list of tables (or figures) with nothing in it is a blank page: print the list only when the book has a
    # numbered, captioned table (booktools.show_table(..., caption=...)) or figure.
    if app.builder.name != "latex":
        return []
    kinds = {kind for numbers in env.toc_fignumbers.values() for kind, found in numbers.items() if found}
    toc = app.builder.context.get("tableofcontents", "")
    for kind, command in (("table", "\\listoftables"), ("figure", "\\listoffigures")):
        if kind not in kinds:
            toc = toc.replace(command, "")
    app.builder.context["tableofcontents"] = toc
    return []


def setup(app):
    app.add_config_value("bookmatter_appendix_start", "", "env")
    app.connect("source-read", _on_source_read)
    app.connect("env-get-outdated", _on_env_get_outdated)
    app.connect("doctree-read", _on_doctree_read)
    # After the toctree collector has numbered the figures and tables (it runs on the same event).
    app.connect("env-get-updated", _on_env_get_updated, priority=900)
    # A change to this file changes the doctrees it made: env_version makes Sphinx rebuild them.
    env_version = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8], 16)
    return {"version": "1.0", "env_version": env_version, "parallel_read_safe": True, "parallel_write_safe": True}
