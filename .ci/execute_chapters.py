"""Execute chapters from their MyST source and store the outputs in the paired notebook.

`jupytext --update --execute` skips writing when only the package changed (it compares inputs), which leaves
stale outputs behind; this script always rebuilds the notebook from the .md, executes it in the chapter's
directory and writes it, then prints how long each chapter took.

usage: python .ci/execute_chapters.py chapters/NN_topic.md [...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient


def execute(md: Path, timeout: int = 900) -> float:
    nb = jupytext.read(md)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(md.parent)}},
    ).execute()
    jupytext.write(nb, md.with_suffix(".ipynb"))
    return time.perf_counter() - start


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        md = Path(arg).with_suffix(".md")
        print(f"== executing {md}", flush=True)
        print(f"   {execute(md):.0f} s", flush=True)
