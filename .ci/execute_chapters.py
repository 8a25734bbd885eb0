"""Execute chapters from their MyST source and store the outputs in the paired notebook.

`jupytext --update --execute` skips writing when only the package changed (it compares inputs), which leaves
stale outputs behind; this script always rebuilds the notebook from the .md, executes it in the chapter's
directory, then prints how long each chapter took.

Re-running it on an unchanged chapter leaves the tracked .ipynb byte-identical, so `make book` keeps `git status`
clean and `make test` passes right after it:

- cell ids are stable: a cell keeps the id stored for the same source in the existing notebook, and a new cell
  gets one derived from its position and source (jupytext alone draws random ids on every conversion);
- matplotlib's font cache is built before the kernel starts, and its one-off stderr line ("Matplotlib is building
  the font cache") is never stored (nbval would fail on it the next time);
- with ``--keep-volatile``, cells tagged ``nbval-ignore-output`` (timings) keep their stored outputs when their
  source did not change: they differ on every run by design and nbval ignores them;
- the file is written only when its content changed, atomically.

usage: python .ci/execute_chapters.py [--keep-volatile] chapters/NN_topic.md [...]
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

FONT_CACHE_LINE = "Matplotlib is building the font cache; this may take a moment.\n"
VOLATILE_TAG = "nbval-ignore-output"


def warm_font_cache() -> None:
    """Build matplotlib's font cache in this process, so the kernel finds it instead of announcing it on stderr."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager

    font_manager.findfont("DejaVu Sans")


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def stable_ids(nb, old) -> None:
    """Give every cell of ``nb`` the id of the stored cell with the same type and source (first unused match),
    else an id derived from its index and source; ids stay unique."""
    stored: dict[tuple[str, str], list[str]] = {}
    for cell in old.cells if old is not None else []:
        if cell.get("id"):
            stored.setdefault((cell.cell_type, _source(cell)), []).append(cell.id)
    used: set[str] = set()
    for i, cell in enumerate(nb.cells):
        candidates = [c for c in stored.get((cell.cell_type, _source(cell)), []) if c not in used]
        if candidates:
            cell.id = candidates[0]
        else:
            salt = 0
            while True:
                digest = hashlib.sha256(f"{i}\0{salt}\0{cell.cell_type}\0{_source(cell)}".encode()).hexdigest()[:8]
                if digest not in used:
                    break
                salt += 1
            cell.id = digest
        used.add(cell.id)


def clean_outputs(nb) -> None:
    """Drop the font-cache notice from stderr streams (and streams it leaves empty), and merge consecutive chunks
    of one stream: where the kernel split a cell's stdout depends on timing, so an unmerged notebook would differ
    from one run to the next while printing the same text."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = "".join(out["text"])
                if out.get("name") == "stderr":
                    out["text"] = out["text"].replace(FONT_CACHE_LINE, "")
                if not out["text"]:
                    continue
                last = kept[-1] if kept else None
                if last is not None and last.get("output_type") == "stream" and last.get("name") == out.get("name"):
                    last["text"] += out["text"]
                    continue
            kept.append(out)
        cell.outputs = kept


def keep_volatile_outputs(nb, old) -> None:
    """Cells tagged ``nbval-ignore-output`` whose source is unchanged keep their stored outputs."""
    if old is None:
        return
    before = {c.id: c for c in old.cells if c.cell_type == "code" and c.get("id")}
    for cell in nb.cells:
        prev = before.get(cell.get("id"))
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and VOLATILE_TAG in tags and prev is not None and _source(prev) == _source(cell):
            cell.outputs = prev.outputs


def execute(md: Path, timeout: int = 900, keep_volatile: bool = False) -> tuple[float, bool]:
    """Execute ``md`` into its paired notebook; return (seconds, whether the .ipynb changed)."""
    from llm_from_scratch.utils import atomic_path

    target = md.with_suffix(".ipynb")
    old = nbformat.read(target, as_version=4) if target.exists() else None
    nb = jupytext.read(md)
    stable_ids(nb, old)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(md.parent)}},
    ).execute()
    seconds = time.perf_counter() - start
    clean_outputs(nb)
    if keep_volatile:
        keep_volatile_outputs(nb, old)
    text = jupytext.writes(nb, fmt="ipynb")
    if not text.endswith("\n"):
        text += "\n"
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return seconds, False
    json.loads(text)  # never store a notebook that does not parse
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return seconds, True


if __name__ == "__main__":
    args = sys.argv[1:]
    keep = "--keep-volatile" in args
    warm_font_cache()
    for arg in (a for a in args if a != "--keep-volatile"):
        md = Path(arg).with_suffix(".md")
        print(f"== executing {md}", flush=True)
        seconds, changed = execute(md, keep_volatile=keep)
        print(f"   {seconds:.0f} s, {'notebook updated' if changed else 'notebook unchanged'}", flush=True)
