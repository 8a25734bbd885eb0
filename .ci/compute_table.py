"""Fill the seconds column of the compute table in book/how_to_run.md from `make execute`'s output.

    make execute 2>&1 | tee _build/execute.log
    python .ci/compute_table.py _build/execute.log

`.ci/execute_chapters.py` prints "== executing chapters/NN_topic.md" and then "   N s, ..." for each chapter;
the row of the table whose chapter number matches NN gets N. Rows of chapters not in the log keep their value.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "how_to_run.md"
START, END = "% compute-table:start", "% compute-table:end"


def seconds_by_chapter(log: str) -> dict[str, int]:
    """{"00": 41, ..., "A": 12}: the chapter key (its number, or the appendix letter) to whole seconds."""
    out, current = {}, None
    for line in log.splitlines():
        m = re.match(r"== executing chapters/([0-9]+|[A-Z])\d*_", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"\s+(\d+) s,", line)
        if m and current is not None:
            out[current] = int(m.group(1))
            current = None
    return out


def fill(page: str, seconds: dict[str, int]) -> str:
    head, rest = page.split(START, 1)
    table, tail = rest.split(END, 1)
    rows = []
    for row in table.split("\n"):
        m = re.match(r"\| (\d+|[A-Z]) ", row)
        if m:
            key = m.group(1) if not m.group(1).isdigit() else f"{int(m.group(1)):02d}"
            if key in seconds:
                cells = row.split("|")
                cells[-2] = f" {seconds[key]} "
                row = "|".join(cells)
        rows.append(row)
    return head + START + "\n".join(rows) + END + tail


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    seconds = seconds_by_chapter(Path(argv[0]).read_text(encoding="utf-8"))
    if not seconds:
        print(f"no chapter times found in {argv[0]}")
        return 1
    PAGE.write_text(fill(PAGE.read_text(encoding="utf-8"), seconds), encoding="utf-8")
    print(f"{PAGE.relative_to(ROOT)}: seconds for {len(seconds)} chapters, total {sum(seconds.values())} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
