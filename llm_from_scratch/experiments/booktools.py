"""Small display helpers for the chapters: tables that typeset as tables, numbers bound to the prose.

Book-only (nothing in the pipeline imports this). Two rules the PDF check enforces:

- A table is shown with `show_table`, which displays Markdown; myst-nb renders it as a real table in HTML and in
  LaTeX (never raw `| a | b |` rows in an output cell).
- A number the prose quotes from a computation is glued with `glue_text` in the cell that computes it and written
  in the prose as ``{glue:text}`name` `` (myst-nb), so the sentence and the output cannot drift apart;
  `tests/test_glue.py` fails when the prose names a glued value that no cell produces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class _Plain(str):
    """A string whose repr is itself, so a glued value prints without quotes."""

    def __repr__(self) -> str:
        return str(self)


def glue_text(name: str, value, fmt: str = "{}") -> None:
    """Bind `value`, formatted with `fmt`, to `name` for ``{glue:text}`name` `` in the prose.

    Returns None, so a cell that ends with it prints nothing (nbval compares what a cell prints)."""
    from myst_nb import glue

    text = _Plain(fmt.format(value))
    glue(name, text, display=False)


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    rows: Sequence[Mapping] | Sequence[Sequence], columns: Sequence[str] | None = None, digits: int = 3
) -> str:
    """A Markdown pipe table from dicts (columns from the first row unless given) or from sequences."""
    rows = list(rows)
    if columns is None:
        if not rows or not isinstance(rows[0], Mapping):
            raise ValueError("markdown_table: pass columns= for rows that are not dicts")
        columns = list(rows[0])
    body = [[r.get(c, "") for c in columns] if isinstance(r, Mapping) else list(r) for r in rows]
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v, digits) for v in r) + " |" for r in body]
    return "\n".join(lines)


def show_table(
    rows: Sequence[Mapping] | Sequence[Sequence],
    columns: Sequence[str] | None = None,
    digits: int = 3,
    caption: str | None = None,
    name: str | None = None,
) -> None:
    """Display `rows` as a typeset table (HTML and PDF).

    With `caption` (and `name`, e.g. "tbl-11-runs", for ``{numref}`tbl-11-runs` `` in the prose) the table is
    numbered, captioned and listed in the PDF's list of tables: the Markdown is wrapped in MyST's `table`
    directive, which the book renders (the config sets `nb_render_markdown_format: myst`).
    """
    from IPython.display import Markdown, display

    table = markdown_table(rows, columns, digits)
    if caption is not None:
        label = f":name: {name}\n" if name else ""
        table = f":::{{table}} {' '.join(caption.split())}\n{label}\n{table}\n:::"
    display(Markdown(table))
