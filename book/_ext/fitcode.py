"""Lay out displayed package code for the page, at build time (HTML and LaTeX alike).

The package is formatted with ruff at 120 columns; a printed page holds 92 columns of code. For every
`literalinclude` of a Python file this extension re-lays the included text out at `fitcode_columns` columns:

1. dedent the object (a method keeps its class indentation when included with `:pyobject:`);
2. `ruff format --line-length N` (the same formatter the package uses, only narrower);
3. rewrap what a formatter leaves alone: comment lines, trailing comments (moved onto their own line above the
   code) and the prose lines of docstrings, keeping their indentation.

With `fitcode_cells` (default on) the same is done, as a safety net, to a notebook code cell that has a
line wider than the page. The code shown is still the code, token for token; only line breaks and indentation
change. Text that ruff cannot parse (a `:start-at:` fragment that is not whole statements, IPython syntax) is
shown as included. Formatter pragmas (`# fmt: skip`, `# fmt: off`/`on`) are dropped from the displayed text,
since it is laid out anew.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

from docutils import nodes

__all__ = ["fit_python", "setup"]


def _ruff() -> str | None:
    here = Path(sys.executable).parent / "ruff"
    return str(here) if here.exists() else shutil.which("ruff")


def ruff_format(code: str, columns: int) -> str | None:
    """`code` formatted by ruff at `columns`, or None when ruff is missing or cannot parse it."""
    exe = _ruff()
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, "format", "--isolated", f"--line-length={columns}", "--stdin-filename", "fitcode.py", "-"],
            input=code,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _docstring_lines(code: str) -> set[int]:
    """0-based numbers of the lines that lie inside a triple-quoted string (its first and last lines too)."""
    inside: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.STRING and tok.string.lstrip("rRbBuUfF")[:3] in ('"""', "'''"):
                inside.update(range(tok.start[0] - 1, tok.end[0]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return inside


def _comment_start(line: str) -> int | None:
    """Column of a trailing `#` comment on a code line (None when there is none or it is inside a string)."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    for tok in toks:
        if tok.type == tokenize.COMMENT:
            return len(line) - len(line.lstrip()) + tok.start[1]
    return None


def _wrap(text: str, indent: str, columns: int) -> list[str]:
    return textwrap.wrap(
        text,
        width=columns,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


_QUOTES = ('"""', "'''")


def _rewrap_docstrings(lines: list[str], columns: int) -> list[str]:
    """Rewrap each docstring paragraph that has an over-long line (a paragraph: consecutive non-blank
    lines of one indentation; list items start their own paragraph)."""
    in_doc = _docstring_lines("\n".join(lines))
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i not in in_doc or not lines[i].strip():
            out.append(lines[i])
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        j = i + 1
        while (
            j < len(lines)
            and j in in_doc
            and lines[j].strip()
            and lines[j].startswith(indent)
            and not lines[j][len(indent) :].startswith((" ", "- ", "* "))
            and not lines[j - 1].rstrip().endswith(_QUOTES)
            and not lines[j].strip().startswith(_QUOTES)
        ):
            j += 1
        para = lines[i:j]
        if all(len(line) <= columns for line in para):
            out.extend(para)
        else:
            out.extend(_wrap(" ".join(line.strip() for line in para), indent, columns))
        i = j
    return out


def rewrap(code: str, columns: int) -> str:
    """Rewrap over-long docstring paragraphs, comments and string arguments of formatted `code`."""
    out: list[str] = []
    for line in _rewrap_docstrings(code.split("\n"), columns):
        if len(line) <= columns:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            out.extend(_wrap(body, indent + "# ", columns))
        else:
            col = _comment_start(line)
            if col is not None and line[:col].strip():
                comment = line[col:].lstrip("#").strip()
                out.extend(_wrap(comment, indent + "# ", columns))
                out.append(line[:col].rstrip())
            else:
                out.extend(_split_string(line, indent, columns))
    return "\n".join(out)


def _lift_comments(code: str, columns: int) -> str:
    """Trailing comments of over-long code lines move onto their own line above the code (before ruff
    runs, so that the formatter lays out the code alone)."""
    in_doc = _docstring_lines(code)
    out = []
    for i, line in enumerate(code.split("\n")):
        col = None if i in in_doc or len(line) <= columns else _comment_start(line)
        if col is not None and line[:col].strip():
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + line[col:].strip())
            out.append(line[:col].rstrip())
        else:
            out.append(line)
    return "\n".join(out)


def _split_string(line: str, indent: str, columns: int) -> list[str]:
    """A line that is one string literal (an argument, maybe with a trailing comma), split into adjacent
    literals at spaces outside `{...}`; Python joins adjacent literals inside brackets into the same string."""
    try:
        toks = [
            t
            for t in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline)
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [line]
    ok = toks and toks[0].type == tokenize.STRING
    ok = ok and (len(toks) == 1 or (len(toks) == 2 and toks[1].string == ","))
    if not ok:
        return [line]
    literal = toks[0].string
    prefix = literal[: len(literal) - len(literal.lstrip("rRbBuUfF"))]
    quote = literal[len(prefix)]
    if literal[len(prefix) :].startswith(quote * 3) or "b" in prefix.lower():
        return [line]
    body, comma = literal[len(prefix) + 1 : -1], "," if len(toks) == 2 else ""
    room = columns - len(indent) - len(prefix) - 2 - len(comma)
    pieces, current, depth = [], "", 0
    for ch in body:
        current += ch
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == " " and depth == 0 and len(current) >= room // 2:
            pieces.append(current)
            current = ""
    pieces.append(current)
    lines, acc = [], ""
    for piece in pieces:
        if acc and len(acc) + len(piece) > room:
            lines.append(acc)
            acc = ""
        acc += piece
    lines.append(acc)
    return [f"{indent}{prefix}{quote}{chunk}{quote}" for chunk in lines[:-1]] + [
        f"{indent}{prefix}{quote}{lines[-1]}{quote}{comma}"
    ]


def fit_python(code: str, columns: int = 92) -> str:
    """`code` laid out for `columns`: dedented, ruff-formatted, comments and docstrings rewrapped."""
    trailing = code.endswith("\n")
    text = textwrap.dedent(code)
    if all(len(line) <= columns for line in text.splitlines()):
        return text if trailing else text.rstrip("\n")
    # Formatter pragmas say "keep my 120-column layout"; the page needs another layout, so they go.
    text = re.sub(r"[ \t]*# fmt: ?skip[ \t]*$", "", text, flags=re.M)
    text = re.sub(r"^[ \t]*# fmt: ?(?:off|on)[ \t]*\n", "", text, flags=re.M)
    text = _lift_comments(text, columns)
    formatted = ruff_format(text if text.endswith("\n") else text + "\n", columns)
    if formatted is None:
        formatted = text
    result = rewrap(formatted.rstrip("\n"), columns)
    if _parses(text) and not _parses(result):
        result = formatted.rstrip("\n")
    return result + "\n" if trailing else result


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _is_python_include(node: nodes.literal_block) -> bool:
    source = str(node.get("source", ""))
    return source.endswith(".py") and node.get("language", "python") in ("python", "python3", "py", "default")


def fit_c(code: str, columns: int = 92) -> str:
    """Break C/C++ lines wider than `columns` after a comma or an opening parenthesis (whitespace is free in C
    outside strings, comments and preprocessor lines, which are left alone); continuation lines are indented
    8 columns deeper."""
    out = []
    for line in code.split("\n"):
        stripped = line.lstrip()
        if len(line) <= columns or stripped.startswith(("#", "//", "/*", "*")) or '"' in line or "//" in line:
            out.append(line)
            continue
        indent = line[: len(line) - len(stripped)] + " " * 8
        rest = line
        while len(rest) > columns:
            cut = max(rest.rfind(", ", 0, columns) + 1, rest.rfind("(", 0, columns - 1) + 1)
            if cut <= len(indent):
                break
            out.append(rest[:cut].rstrip())
            rest = indent + rest[cut:].lstrip()
        out.append(rest)
    return "\n".join(out)


def _is_c_include(node: nodes.literal_block) -> bool:
    source = str(node.get("source", ""))
    return source.endswith((".c", ".cc", ".cpp", ".h", ".hpp"))


def _is_notebook_cell(node: nodes.literal_block) -> bool:
    parent = node.parent
    return parent is not None and parent.get("nb_element") == "cell_code_source"


def _on_doctree_read(app, doctree) -> None:
    columns = app.config.fitcode_columns
    for node in list(doctree.findall(nodes.literal_block)):
        is_c = _is_c_include(node)
        if not (is_c or _is_python_include(node) or (app.config.fitcode_cells and _is_notebook_cell(node))):
            continue
        old = node.astext()
        new = fit_c(old, columns) if is_c else fit_python(old, columns)
        if new == old:
            continue
        node.rawsource = new
        node.children = []
        node += nodes.Text(new)
        # Line-number highlights refer to the original layout; they no longer apply.
        node.get("highlight_args", {}).pop("hl_lines", None)


def setup(app):
    app.add_config_value("fitcode_columns", 92, "env")
    # Notebook code cells too, as a safety net: a cell wider than the page is laid out like package code (the
    # chapter's source keeps its own layout; cells with IPython syntax that ruff cannot parse are left as is).
    app.add_config_value("fitcode_cells", True, "env")
    app.connect("doctree-read", _on_doctree_read)
    # A change to this file changes the doctrees it made: env_version makes Sphinx rebuild them.
    env_version = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8], 16)
    return {"version": "1.0", "env_version": env_version, "parallel_read_safe": True, "parallel_write_safe": True}
