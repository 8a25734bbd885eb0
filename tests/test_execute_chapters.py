""".ci/execute_chapters.py: re-executing an unchanged chapter leaves its notebook byte-identical."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

CHAPTER = textwrap.dedent(
    """\
    ---
    jupytext:
      formats: ipynb,md:myst
      text_representation: {extension: .md, format_name: myst, format_version: 0.13, jupytext_version: 1.19.6}
    kernelspec: {display_name: Python 3, language: python, name: python3}
    ---

    # A chapter

    ```{code-cell} ipython3
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(0)
    print(np.round(rng.normal(size=3), 3))
    plt.plot(rng.normal(size=20))
    plt.show()
    ```

    ```{code-cell} ipython3
    :tags: [nbval-ignore-output]

    import time

    print(time.perf_counter_ns())
    ```

    ```{code-cell} ipython3
    print("same text")
    ```

    ```{code-cell} ipython3
    print("same text")
    ```
    """
)


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("execute_chapters", ROOT / ".ci" / "execute_chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unchanged_chapter_is_byte_identical_and_edits_keep_other_ids(tmp_path, ex):
    md = tmp_path / "99_test.md"
    md.write_text(CHAPTER)
    _, changed = ex.execute(md)
    first = md.with_suffix(".ipynb").read_bytes()
    assert changed
    _, changed = ex.execute(md, keep_volatile=True)
    assert not changed and md.with_suffix(".ipynb").read_bytes() == first  # the timing cell kept its output
    ids = [c.id for c in nbformat.reads(first.decode(), as_version=4).cells]
    assert len(set(ids)) == len(ids)  # two cells with the same source still get distinct ids
    md.write_text(CHAPTER.replace("# A chapter", "# A chapter, renamed"))
    ex.execute(md, keep_volatile=True)
    new_ids = [c.id for c in nbformat.read(md.with_suffix(".ipynb"), as_version=4).cells]
    assert new_ids[1:] == ids[1:] and new_ids[0] != ids[0]  # only the edited cell got a new id


def test_font_cache_notice_is_never_stored(ex):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("import matplotlib.pyplot")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=ex.FONT_CACHE_LINE),
        nbformat.v4.new_output("stream", name="stdout", text="kept\n"),
    ]
    other = nbformat.v4.new_code_cell("import warnings")
    other.outputs = [nbformat.v4.new_output("stream", name="stderr", text=ex.FONT_CACHE_LINE + "a real warning\n")]
    nb.cells = [cell, other]
    ex.clean_outputs(nb)
    assert [o["text"] for o in cell.outputs] == ["kept\n"]
    assert [o["text"] for o in other.outputs] == ["a real warning\n"]


def test_stream_chunks_are_merged_so_timing_cannot_change_the_notebook(ex):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1); print(2)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="1\n"),
        nbformat.v4.new_output("stream", name="stdout", text="2\n"),
        nbformat.v4.new_output("stream", name="stderr", text="warning\n"),
        nbformat.v4.new_output("stream", name="stdout", text="3\n"),
    ]
    nb.cells = [cell]
    ex.clean_outputs(nb)
    assert [(o["name"], o["text"]) for o in cell.outputs] == [
        ("stdout", "1\n2\n"),
        ("stderr", "warning\n"),
        ("stdout", "3\n"),
    ]
