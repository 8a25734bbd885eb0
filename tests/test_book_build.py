"""The book's build configuration: code laid out for the page, structure, and the PDF check's detectors.

These run without TeX or a book build (seconds); `make book-check` builds the PDF and runs `.ci/check_pdf.py`.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = 92
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import fitcode  # noqa: E402

needs_ruff = pytest.mark.skipif(fitcode._ruff() is None, reason="ruff is not installed")


def _load_check_pdf():
    spec = importlib.util.spec_from_file_location("check_pdf", ROOT / ".ci" / "check_pdf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pyobject(path: str, name: str) -> str:
    from sphinx.directives.code import LiteralIncludeReader

    class Config:
        source_encoding = "utf-8"
        highlight_language = "python"

    text, _ = LiteralIncludeReader(str(ROOT / path), {"pyobject": name}, Config).read()
    return text


def _includes() -> list[tuple[str, str]]:
    """(file, object) of every `:pyobject:` literalinclude in the chapters."""
    out = []
    pattern = re.compile(r"```\{literalinclude\} (\S+\.py)\n((?::[^\n]*\n)*)")
    for md in sorted((ROOT / "chapters").glob("*.md")):
        for m in pattern.finditer(md.read_text(encoding="utf-8")):
            obj = re.search(r":pyobject:\s*(\S+)", m.group(2))
            if obj:
                path = (md.parent / m.group(1)).resolve().relative_to(ROOT)
                out.append((str(path), obj.group(1)))
    return out


def _normalised_ast(code: str) -> str:
    """The code's syntax tree with the whitespace inside string constants collapsed: rewrapping docstrings and
    splitting a long string into adjacent literals changes only that."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = " ".join(node.value.split())
        if isinstance(node, ast.JoinedStr):
            merged = []
            for part in node.values:
                if merged and isinstance(part, ast.Constant) and isinstance(merged[-1], ast.Constant):
                    merged[-1] = ast.Constant(merged[-1].value + part.value)
                else:
                    merged.append(part)
            node.values = merged
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = " ".join(node.value.split())
    return ast.dump(tree)


@needs_ruff
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("llm_from_scratch/train/distributed.py", "setup_distributed"),
        ("llm_from_scratch/tokenizer/shards.py", "read_header"),
        ("llm_from_scratch/align/grpo.py", "group_advantages"),
    ],
)
def test_fitcode_fits_real_objects(path, name):
    if not (ROOT / path).exists():
        candidates = [p for p in (ROOT / "llm_from_scratch").rglob("*.py") if f"def {name}(" in p.read_text()]
        if not candidates:
            pytest.skip(f"{name} is not in the package")
        path = str(candidates[0].relative_to(ROOT))
    original = _pyobject(path, name)
    fitted = fitcode.fit_python(original, COLUMNS)
    assert max(len(line) for line in fitted.splitlines()) <= COLUMNS
    ast.parse(fitted)
    import textwrap

    assert _normalised_ast(fitted) == _normalised_ast(textwrap.dedent(original)), "the code itself changed"


@needs_ruff
def test_fitcode_most_included_lines_fit():
    includes = _includes()
    assert len(includes) > 50
    long_lines = total = 0
    for path, name in includes:
        try:
            text = _pyobject(path, name)
        except (OSError, ValueError):
            continue
        lines = fitcode.fit_python(text, COLUMNS).splitlines()
        total += len(lines)
        long_lines += sum(len(line) > COLUMNS for line in lines)
    # A few lines that ruff cannot split (a `# fmt: skip` tuple) are left to verbatimforcewraps.
    assert long_lines == 0, f"{long_lines} of {total} displayed lines are wider than {COLUMNS}"


def test_fitcode_rewraps_comments_and_docstrings():
    code = (
        "def f(x):\n"
        '    """' + "word " * 30 + '"""\n'
        "    # " + "comment " * 20 + "\n"
        "    return x  # " + "trailing " * 12 + "\n"
    )
    fitted = fitcode.rewrap(code, 60)
    assert max(len(line) for line in fitted.splitlines()) <= 60
    ast.parse(fitted)
    assert fitted.count("word") == 30 and fitted.count("comment") == 20 and fitted.count("trailing") == 12


def test_fitcode_splits_long_string_arguments():
    line = '        f"{path}: token id {int(tokens.max())} does not fit a vocabulary of {vocab_size} tokens at all",'
    pieces = fitcode._split_string(line, "        ", 60)
    assert len(pieces) > 1 and all(len(p) <= 60 for p in pieces)
    joined = "(\n" + "\n".join(pieces) + "\n)"
    assert ast.parse(joined)
    assert (
        "".join(p.strip()[2:-1] if p.strip().endswith('"') else p.strip()[2:-2] for p in pieces) == line.strip()[2:-2]
    )


def test_config():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]["config"]
    assert sphinx["math_eqref_format"] == "({number})"
    assert sphinx["nb_render_markdown_format"] == "myst"  # CommonMark has no tables
    assert sphinx["latex_use_xindy"] is False
    latex = sphinx["latex_elements"]
    assert "\\listoffigures" in latex["tableofcontents"] and "\\listoftables" in latex["tableofcontents"]
    assert latex["tableofcontents"].startswith("\\frontmatter")
    size = float(re.search(r"fontsize\{([\d.]+)pt\}", latex["fvset"]).group(1))
    # FreeMono is 0.6 em a character; A4 with 1 in margins leaves 6.27 in, less the code frame's padding.
    assert size >= 7 and COLUMNS * 0.6 * size <= 6.27 * 72.27 - 8
    assert set(config["sphinx"]["local_extensions"]) >= {"fitcode", "bookmatter"}


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"]]


def test_back_matter_and_appendices_in_the_toc():
    files = _toc_files()
    assert files.index("book/solutions") > files.index("chapters/A1_hf_export")
    assert files[-2:] == ["book/glossary", "book/bibliography"]
    glossary = (ROOT / "book" / "glossary.md").read_text()
    assert "```{glossary}" in glossary
    assert len(re.findall(r"^\S.*$", glossary.split("```{glossary}")[1], re.M)) >= 40


def test_every_chapter_with_exercises_has_solutions():
    missing = []
    for md in sorted((ROOT / "chapters").glob("*.md")):
        has_exercises = re.search(r"^## Exercises", md.read_text(encoding="utf-8"), re.M)
        if has_exercises and not (ROOT / "book" / "solutions" / md.name).exists():
            missing.append(md.stem)
    assert not missing, f"chapters with exercises but no book/solutions/NN_topic.md: {', '.join(missing)}"


def test_solutions_appendix_includes_in_chapter_order(tmp_path):
    import bookmatter

    (tmp_path / "book" / "solutions").mkdir(parents=True)
    for name in ("10_adamw.md", "02_quality_filters.md", "A1_hf_export.md"):
        (tmp_path / "book" / "solutions" / name).write_text("## x\n")
    names = [p.name for p in bookmatter.solution_files(tmp_path)]
    assert names == ["02_quality_filters.md", "10_adamw.md", "A1_hf_export.md"]


def test_check_pdf_detectors():
    check_pdf = _load_check_pdf()
    assert check_pdf.CONTINUATION.search('  ,→s.jsonl, rejected.jsonl"')
    leaks = {
        "double backticks": "use ``x`` here",
        "reST role": "see :func:`train`",
        "Markdown table row": "| step | loss |",
        "<Figure size": "<Figure size 640x480 with 1 Axes>",
        "**bold**": "the **best** run",
    }
    for name, line in leaks.items():
        assert check_pdf.MARKUP[name].search(line), name
    for clean in ("x**2 + y**2", "a | b", "def f(**kwargs):", "  step   loss"):
        assert not any(p.search(clean) for p in check_pdf.MARKUP.values()), clean
    tex = (
        "\\chapter{One}\n\\begin{figure}\\includegraphics{{a}.png}\\caption{A}\\end{figure}\n"
        "\\chapter{Two}\n\\sphinxincludegraphics{{b}.png}"
    )
    n, uncaptioned = check_pdf.figures(tex)
    assert n == 2 and len(uncaptioned) == 1
    assert check_pdf.chapter_at(check_pdf.tex_chapter_of(tex), uncaptioned[0][0]) == "Two"


def test_compute_table_fills_seconds_from_the_execute_log():
    spec = importlib.util.spec_from_file_location("compute_table", ROOT / ".ci" / "compute_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log = "== executing chapters/05_tokenization.md\n   73 s, notebook updated\n"
    log += "== executing chapters/A1_hf_export.md\n   12 s, notebook unchanged\n"
    seconds = module.seconds_by_chapter(log)
    assert seconds == {"05": 73, "A": 12}
    page = (ROOT / "book" / "how_to_run.md").read_text()
    filled = module.fill(page, seconds)
    assert re.search(r"^\| 5 Tokenization \|.*\| 73 \|$", filled, re.M)
    assert re.search(r"^\| A Hugging Face \|.*\| 12 \|$", filled, re.M)
    assert filled.count("\n") == page.count("\n")


@needs_ruff
def test_fitcode_lays_out_includes_and_wide_notebook_cells_in_the_doctree():
    from types import SimpleNamespace

    from docutils import nodes

    wide = "result = some_function(first_argument_value, second_argument_value, third_argument_value, 4, 5)\n"
    narrow = "x = 1  # short\n"
    document = nodes.container()
    cell = nodes.container(nb_element="cell_code_source")
    cell += nodes.literal_block(wide, wide, language="ipython3")
    include = nodes.literal_block(wide, wide, source=str(ROOT / "llm_from_scratch" / "x.py"), language="python")
    untouched = nodes.literal_block(wide, wide, language="text")
    small = nodes.container(nb_element="cell_code_source")
    small += nodes.literal_block(narrow, narrow, language="ipython3")
    document += [cell, include, untouched, small]
    app = SimpleNamespace(config=SimpleNamespace(fitcode_columns=COLUMNS, fitcode_cells=True))
    fitcode._on_doctree_read(app, document)
    for block in (cell[0], include):
        assert max(len(line) for line in block.astext().splitlines()) <= COLUMNS
        assert block.rawsource == block.astext()
    assert len(wide) > COLUMNS + 1 and cell[0].astext() != wide
    assert untouched.astext() == wide and small[0].astext() == narrow


def test_fitcode_breaks_wide_c_lines():
    line = "    __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(w + j + 16))));"
    fitted = fitcode.fit_c(line + "\n#define X 1", 60)
    assert all(len(part) <= 60 for part in fitted.splitlines())
    assert "".join(fitted.split()) == "".join((line + "\n#define X 1").split())
