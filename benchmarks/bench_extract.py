"""HTML extraction: ours (`llm_from_scratch.data.html`) vs trafilatura on real documentation pages.

Pages: the 78 HTML files of pygame's documentation (Sphinx output shipped in its wheel; nobody here wrote them).
For each page: words kept by each extractor, the words they agree on (multiset intersection: recall against
trafilatura's text, precision of ours), and seconds per MB of HTML; contenders alternate page by page and the
timing is the median of `--repeats` passes. Then the C4 check of the issue: the package's news articles served as
HTML with paragraphs wrapped at 72 columns, how many survive extraction + C4 with most of their words.
Last line: one JSON object.

    python benchmarks/bench_extract.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import html
import importlib.metadata
import json
import statistics
import textwrap
import time
from collections import Counter


def pages() -> list[tuple[str, str, int]]:
    from llm_from_scratch.data.html import decode_html

    files = sorted((f for f in importlib.metadata.files("pygame") or [] if str(f).endswith(".html")), key=str)
    out = []
    for f in files:
        raw = f.locate().read_bytes()
        out.append((str(f).split("generated/")[-1], decode_html(raw)[0], len(raw)))
    return out


def wrapped_news_kept(n: int = 38) -> tuple[int, int]:
    """(articles kept by extraction + C4 with >= 80 % of their words, wrapped at 72 columns; same, unwrapped)."""
    from llm_from_scratch.data.filters import C4Filter
    from llm_from_scratch.data.normalize import extract
    from llm_from_scratch.data.sources import news_articles

    c4 = C4Filter()
    kept = [0, 0]
    for doc in list(news_articles())[:n]:
        for i, width in enumerate((72, None)):
            para = html.escape(doc.text)
            body = textwrap.fill(para, width, break_on_hyphens=False) if width else para
            text, _ = c4.clean_lines(extract(f"<!DOCTYPE html><html><body><p>{body}</p></body></html>", "html"))
            if c4.page_reason(text) is None and len(text.split()) >= 0.8 * len(doc.text.split()):
                kept[i] += 1
    return kept[0], kept[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import trafilatura

    from llm_from_scratch.data.normalize import extract

    contenders = {
        "ours": lambda page: extract(page, "html"),
        "trafilatura": lambda page: trafilatura.extract(page, include_tables=True, favor_recall=True) or "",
    }
    docs = pages()
    mb = sum(n for _, _, n in docs) / 1e6
    seconds: dict[str, list[float]] = {k: [] for k in contenders}
    texts: dict[str, list[str]] = {k: [] for k in contenders}
    for rep in range(args.repeats):
        total = dict.fromkeys(contenders, 0.0)
        for i, (_, page, _) in enumerate(docs):
            order = list(contenders) if (i + rep) % 2 == 0 else list(reversed(contenders))  # alternate who goes first
            for name in order:
                start = time.perf_counter()
                text = contenders[name](page)
                total[name] += time.perf_counter() - start
                if rep == 0:
                    texts[name].append(text)
        for name in contenders:
            seconds[name].append(total[name])
    ours_words = ref_words = common = 0
    for a, b in zip(texts["ours"], texts["trafilatura"], strict=True):
        ca, cb = Counter(a.split()), Counter(b.split())
        ours_words, ref_words, common = ours_words + ca.total(), ref_words + cb.total(), common + (ca & cb).total()
    s_per_mb = {k: statistics.median(v) / mb for k, v in seconds.items()}
    wrapped, unwrapped = wrapped_news_kept()
    print(f"{len(docs)} pygame pages, {mb:.2f} MB of HTML")
    for name in contenders:
        words = ours_words if name == "ours" else ref_words
        print(f"  {name:12s} {words:7d} words  {s_per_mb[name]:.3f} s/MB  ({1 / s_per_mb[name]:.1f} MB/s)")
    print(f"  agreement: {common / ref_words:.3f} of trafilatura's words in ours, {common / ours_words:.3f} vice versa")
    print(f"  news as HTML + C4: {wrapped}/38 kept wrapped at 72 columns, {unwrapped}/38 unwrapped")
    print(
        json.dumps(
            {
                "pages": len(docs),
                "html_mb": round(mb, 3),
                "ours_words": ours_words,
                "trafilatura_words": ref_words,
                "recall_vs_trafilatura": round(common / ref_words, 4),
                "precision_vs_trafilatura": round(common / ours_words, 4),
                "ours_s_per_mb": round(s_per_mb["ours"], 4),
                "trafilatura_s_per_mb": round(s_per_mb["trafilatura"], 4),
                "speedup": round(s_per_mb["trafilatura"] / s_per_mb["ours"], 2),
                "news_wrapped_kept": wrapped,
                "news_unwrapped_kept": unwrapped,
            }
        )
    )


if __name__ == "__main__":
    main()
