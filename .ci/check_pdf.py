"""Check the built PDF against the book's typesetting bars; print the counts and every offender.

    python .ci/check_pdf.py _build/latex/llm-from-scratch.pdf [--min-pages 220] [--report-only]

Reads the PDF's text (`pdftotext -layout`), the LaTeX source and log next to it (same name, .tex/.log/.toc/.ind),
and fails (exit 1) with a list of what is wrong:

- continuation marks: a code or output line too long for the page, which `verbatimforcewraps` broke with the
  hook-arrow continuation mark (pdftotext prints it as ",→");
- leaked markup: double backticks, reST roles (`:func:` ...), raw Markdown table rows (`| a | b |`),
  `<Figure size ...>`, `**bold**`;
- "??" (an unresolved reference), and the log's undefined references or citations;
- a title used twice as a chapter or section of the contents (e.g. a front-matter chapter repeated as a section);
- images without a caption (`\\includegraphics` outside a figure environment with `\\caption`): at least 90 % of
  the images must be numbered, captioned figures;
- no index, no glossary, no list of figures or of tables; fewer pages than --min-pages.

Every offender is listed with its chapter, so each chapter's author can find it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

CONTINUATION = re.compile(r",→|↪")
MARKUP = {
    "double backticks": re.compile(r"``"),
    "reST role": re.compile(r":(?:func|class|meth|mod|attr|obj|data|exc|ref|doc|py:\w+):`"),
    "Markdown table row": re.compile(r"^\s*\| [^|\n]* \|(?: [^|\n]* \|)+\s*$|^\s*\|?\s*:?-{3,}:?\s*\|\s*:?-{3,}"),
    "<Figure size": re.compile(r"<Figure size"),
    "**bold**": re.compile(r"(?<![\w)\]])\*\*[A-Za-z][^*\n]{0,80}?[A-Za-z0-9.:)]\*\*"),
}
# The plays' own source format, shown as data where the book teaches it (the map and the raw-text chapter print
# excerpts of the Markdown files and the code that finds a speaker tag): a speaker's name in capitals between double
# asterisks there is the file's content, not markup that failed to render.
RAW_SOURCE_CHAPTERS = ("The map", "1 Raw text")
SPEAKER_TAG = re.compile(r"\*\*[A-Z][A-Z ]*\*\*")
UNRESOLVED = re.compile(r"(?<!\?)\?\?(?!\?)")
TOC_LINE = re.compile(r"\\contentsline \{(chapter|section)\}\{(?:\\numberline \{([^}]*)\})?(.*)\}\{([^}]*)\}\{[^}]*\}")
LOG_UNDEFINED = re.compile(r"LaTeX Warning: (?:Hyper reference|Reference|Citation) .* undefined")


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def page_count(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^Pages:\s+(\d+)", info, re.M)
    return int(match.group(1)) if match else 0


def _clean_title(tex_title: str) -> str:
    title = re.sub(r"\\sphinxhyphen\{\}", "-", tex_title)
    title = re.sub(r"\\sphinxcode\{\\sphinxupquote\{(.*?)\}\}", r"\1", title)
    title = re.sub(r"\\[a-zA-Z]+\s?", "", title)
    return title.replace("{", "").replace("}", "").strip()


def toc_entries(toc: Path) -> list[tuple[str, str, str, str]]:
    """(level, number, title, printed page) of every chapter and section in the LaTeX .toc file."""
    if not toc.exists():
        return []
    out = []
    for line in toc.read_text(errors="replace").splitlines():
        m = TOC_LINE.search(line)
        if m:
            out.append((m.group(1), m.group(2) or "", _clean_title(m.group(3)), m.group(4)))
    return out


def _roman(text: str) -> int | None:
    values = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
    if not text or any(ch not in values for ch in text):
        return None
    total = 0
    for ch, nxt in zip(text, [*text[1:], ""], strict=True):
        total += -values[ch] if nxt and values[nxt] > values[ch] else values[ch]
    return total


def _page_number(text: str) -> tuple[str, int] | None:
    """("arabic"|"roman", number) printed in a page's header or footer."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines[-1:] + lines[:1]:
        words = ln.split()
        for word in (words[0], words[-1]):
            if word.isdigit():
                return "arabic", int(word)
            if _roman(word) is not None:
                return "roman", _roman(word)
    return None


def page_chapters(pages: list[str], toc: list[tuple[str, str, str, str]]) -> list[str]:
    """The chapter each PDF page belongs to, from the printed page number in its header or footer and the
    first page of each chapter in the .toc (roman numbers in the front matter, arabic after)."""
    starts: dict[str, list[tuple[int, str]]] = {"arabic": [], "roman": []}
    for level, number, title, page in toc:
        if level != "chapter":
            continue
        label = (f"{number} {title}".strip() if number else title)[:60]
        if page.isdigit():
            starts["arabic"].append((int(page), label))
        elif _roman(page) is not None:
            starts["roman"].append((_roman(page), label))
    out, current = [], "front matter"
    for text in pages:
        found = _page_number(text)
        if found is not None:
            kind, printed = found
            label = None
            for start, name in starts[kind]:
                if printed >= start:
                    label = name
            current = label or ("front matter" if kind == "roman" else current)
        out.append(current)
    return out


def tex_chapter_of(tex: str) -> list[tuple[int, str]]:
    return [(m.start(), _clean_title(m.group(1))[:60]) for m in re.finditer(r"\\chapter\*?\{(.*)\}\s*$", tex, re.M)]


def chapter_at(chapters: list[tuple[int, str]], pos: int) -> str:
    name = "front matter"
    for start, title in chapters:
        if start <= pos:
            name = title
    return name


def figures(tex: str) -> tuple[int, list[tuple[int, str]]]:
    """(number of images, positions and file names of images that are not in a captioned figure)."""
    captioned_spans = []
    for m in re.finditer(r"\\begin\{figure\}.*?\\end\{figure\}", tex, re.S):
        if "\\caption" in m.group(0):
            captioned_spans.append((m.start(), m.end()))
    images = list(re.finditer(r"\\(?:sphinx)?includegraphics(?:\[[^\]]*\])?\{\{?([^}]*)\}", tex))
    uncaptioned = [(m.start(), m.group(1)) for m in images if not any(a <= m.start() < b for a, b in captioned_spans)]
    return len(images), uncaptioned


def check(pdf: Path, min_pages: int, verbose: bool = False) -> tuple[list[str], list[str]]:
    """(failures, report lines)."""
    tex_path, log_path = pdf.with_suffix(".tex"), pdf.with_suffix(".log")
    toc_path, ind_path = pdf.with_suffix(".toc"), pdf.with_suffix(".ind")
    text = pdf_text(pdf)
    pages = text.split("\f")
    toc = toc_entries(toc_path)
    chapter_of_page = page_chapters(pages, toc)
    failures: list[str] = []
    report: list[str] = []

    wrapped: dict[str, list[str]] = defaultdict(list)
    markup: dict[str, list[str]] = defaultdict(list)
    unresolved: list[str] = []
    for number, page in enumerate(pages):
        chapter = chapter_of_page[number] if number < len(chapter_of_page) else "?"
        lines = page.splitlines()
        for i, line in enumerate(lines):
            if CONTINUATION.search(line):
                before = lines[i - 1].strip() if i else ""
                wrapped[chapter].append(f"p{number + 1}: {before[:60]} / {line.strip()[:30]}")
            raw_source = chapter.startswith(RAW_SOURCE_CHAPTERS)
            for name, pattern in MARKUP.items():
                text = SPEAKER_TAG.sub("", line) if raw_source and name == "**bold**" else line
                if pattern.search(text):
                    markup[chapter].append(f"p{number + 1} [{name}]: {line.strip()[:90]}")
            if UNRESOLVED.search(line):
                unresolved.append(f"p{number + 1} ({chapter}): {line.strip()[:90]}")

    n_wrapped = sum(map(len, wrapped.values()))
    report.append(f"continuation marks (wrapped code/output lines): {n_wrapped}")
    for chapter, items in wrapped.items():
        report.append(f"  {chapter}: {len(items)}")
        if verbose:
            report.extend(f"    {item}" for item in items)
    if n_wrapped:
        failures.append(f"{n_wrapped} code or output lines were wrapped (lines longer than the page)")

    n_markup = sum(map(len, markup.values()))
    report.append(f"leaked markup: {n_markup}")
    for chapter, items in markup.items():
        report.append(f"  {chapter}: {len(items)}")
        report.extend(f"    {item}" for item in items[:12])
    if n_markup:
        failures.append(f"{n_markup} lines show leaked markup")

    report.append(f'"??" in the text: {len(unresolved)}')
    report.extend(f"  {item}" for item in unresolved[:20])
    if unresolved:
        failures.append(f'{len(unresolved)} "??" (unresolved references) in the text')
    if log_path.exists():
        undefined = sorted(set(LOG_UNDEFINED.findall(log_path.read_text(errors="replace"))))
        report.append(f"undefined references/citations in the LaTeX log: {len(undefined)}")
        report.extend(f"  {u}" for u in undefined[:20])
        if undefined:
            failures.append(f"{len(undefined)} undefined references or citations in {log_path.name}")

    titles = Counter(title.lower() for level, _, title, _ in toc)
    repeated = sorted(t for t, n in titles.items() if n > 1 and t not in {"exercises", "summary", "further reading"})
    report.append(f"titles used twice in the contents: {len(repeated)} {repeated}")
    if repeated:
        failures.append(f"titles used twice in the contents: {', '.join(repeated)}")

    if tex_path.exists():
        tex = tex_path.read_text(errors="replace")
        n_images, uncaptioned = figures(tex)
        chapters = tex_chapter_of(tex)
        share = 1 - len(uncaptioned) / n_images if n_images else 1.0
        report.append(f"images: {n_images}, captioned figures: {n_images - len(uncaptioned)} ({share:.1%})")
        by_chapter: dict[str, list[str]] = defaultdict(list)
        for pos, name in uncaptioned:
            by_chapter[chapter_at(chapters, pos)].append(Path(name).name[:16])
        for chapter, names in by_chapter.items():
            report.append(f"  uncaptioned in {chapter}: {len(names)}")
        if share < 0.9:
            failures.append(f"only {share:.1%} of the images are captioned figures (at least 90 %)")
        for command, what in (("\\listoffigures", "figure"), ("\\listoftables", "table")):
            if command not in tex:
                failures.append(
                    f"no list of {what}s: the book has no numbered, captioned {what} (tables: show_table(rows, "
                    f'caption="...", name="tbl-NN-slug"))'
                )
    else:
        failures.append(f"{tex_path} is missing")

    has_index = ind_path.exists() and "\\item" in ind_path.read_text(errors="replace")
    has_glossary = any(title.lower() == "glossary" for _, _, title, _ in toc)
    report.append(f"index entries: {'yes' if has_index else 'none'}; glossary chapter: {has_glossary}")
    if not has_index:
        failures.append("the index is missing or empty")
    if not has_glossary:
        failures.append("the glossary is missing")

    n_pages = page_count(pdf)
    report.append(f"pages: {n_pages} (at least {min_pages})")
    if n_pages < min_pages:
        failures.append(f"{n_pages} pages, fewer than {min_pages}")
    return failures, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", type=Path)
    parser.add_argument("--min-pages", type=int, default=220)
    parser.add_argument("--report-only", action="store_true", help="print the report, exit 0")
    parser.add_argument("--verbose", action="store_true", help="list every wrapped line")
    parser.add_argument("--report", type=Path, help="also write the full report (every wrapped line) to this file")
    args = parser.parse_args(argv)
    if not args.pdf.exists():
        print(f"error: {args.pdf} does not exist; build it with 'make pdf'")
        return 2
    failures, report = check(args.pdf, args.min_pages, args.verbose or args.report is not None)
    if args.report is not None:
        args.report.write_text("\n".join(report + [f"- {f}" for f in failures]) + "\n", encoding="utf-8")
        if not args.verbose:
            report = [line for line in report if not line.startswith("    p")]
    print("\n".join(report))
    if failures:
        print(f"\n{args.pdf}: {len(failures)} check(s) failed:")
        print("\n".join(f"  - {f}" for f in failures))
        return 0 if args.report_only else 1
    print(f"\n{args.pdf}: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
