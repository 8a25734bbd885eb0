import html as html_lib
import importlib.metadata
import textwrap
import time
from collections import Counter

import pytest

from llm_from_scratch.data.filters import C4Filter, paragraph_units
from llm_from_scratch.data.html import decode_html, html_to_text, sniff_charset
from llm_from_scratch.data.normalize import extract
from llm_from_scratch.data.sources import news_articles


def test_blocks_become_paragraphs_and_inline_breaks_become_spaces():
    page = (
        "<!DOCTYPE html><html><head><title>T</title><style>p{}</style></head><body>"
        "<nav><a href=/>Home</a></nav><!-- a comment -->"
        "<h1>Title</h1><p>One line\nwrapped   here,\n  and &amp; there.</p>"
        "<div class='sphinxsidebar'>Sidebar text</div>"
        "<ul><li>first</li><li>second <b>bold</b></li></ul><p>A<br>B</p>"
        "<pre>x = 1\ny = 2</pre><script>var a = 1;</script></body></html>"
    )
    assert html_to_text(page) == (
        "Title\n\nOne line wrapped here, and & there.\n\n- first\n- second bold\n\nA\nB\n\nx = 1\ny = 2"
    )


def test_malformed_html_never_raises_and_keeps_text():
    assert html_to_text("<p>unclosed <b>bold <i>both</p><p>next") == "unclosed bold both\n\nnext"
    assert html_to_text("</div></p>text</span>") == "text"
    assert html_to_text("<p>a < b and c > d</p>") == "a < b and c > d"
    assert html_to_text("") == ""


def test_deeply_nested_divs_are_linear_time():
    depth = 100_000  # ~1.2 MB of markup; a recursive extractor would overflow the stack
    page = "<div>" * depth + "<p>deep text.</p>" + "</div>" * depth
    start = time.perf_counter()
    assert html_to_text(page) == "deep text."
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ('<meta charset="iso-8859-1"><p>caf\xe9</p>'.encode("latin-1"), "cp1252", "café"),
        (
            '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>да</p>'.encode("koi8-r"),
            "koi8-r",
            "да",
        ),
        ("\ufeff<p>bom é</p>".encode("utf-8"), "utf-8-sig", "bom é"),
        ("<p>no charset é</p>".encode(), "utf-8", "no charset é"),
        ('<meta charset="no-such-codec"><p>é</p>'.encode(), "utf-8", "é"),
    ],
)
def test_charset_sniffing(data, charset, text):
    assert sniff_charset(data) == charset
    decoded, invalid = decode_html(data)
    assert invalid == 0 and html_to_text(decoded) == text


def test_wrong_charset_is_counted_not_raised():
    decoded, invalid = decode_html('<meta charset="utf-8"><p>caf\xe9 cr\xe8me</p>'.encode("latin-1"))
    assert invalid == 2 and "caf" in decoded


def _as_html(text: str, width: int | None) -> str:
    paras = [p for p in text.split("\n") if p.strip()] if "\n" in text else [text]
    wrap = (lambda p: textwrap.fill(p, width, break_on_hyphens=False)) if width else (lambda p: p)
    body = "".join(f"<p>{wrap(html_lib.escape(p))}</p>\n" for p in paras)
    return f"<!DOCTYPE html>\n<html><head><title>news</title></head><body>\n{body}</body></html>"


def test_c4_makes_the_same_decisions_on_wrapped_and_unwrapped_copies():
    """The package's news articles served as HTML with paragraphs wrapped at 72 columns and unwrapped: after
    extraction and C4 the texts are identical, and (nearly) every article keeps (nearly) all of its words."""
    c4 = C4Filter()
    articles = list(news_articles())[:38]
    kept_docs = 0
    for doc in articles:
        wrapped, flat = (c4.clean_lines(extract(_as_html(doc.text, w), "html"))[0] for w in (72, None))
        assert wrapped == flat
        words_in = len(doc.text.split())
        if c4.page_reason(wrapped) is None and len(wrapped.split()) >= 0.8 * words_in:
            kept_docs += 1
    assert kept_docs >= 36  # before paragraph-level C4: 0 of 38 wrapped copies survived


def test_c4_on_hard_wrapped_plain_text_matches_the_unwrapped_text():
    doc = next(iter(news_articles()))
    wrapped = textwrap.fill(doc.text, 72, break_on_hyphens=False)
    assert len(wrapped.split("\n")) > 10
    assert C4Filter().clean_lines(wrapped) == C4Filter().clean_lines(doc.text)


def test_list_items_are_units_of_their_own():
    assert paragraph_units("Intro line\nwrapped.\n- item one\n- item two\n\n1. first\n2) second") == [
        ["Intro line wrapped.", "- item one", "- item two"],
        ["1. first", "2) second"],
    ]


def _pygame_pages() -> list[str]:
    files = importlib.metadata.files("pygame") or []
    pages = sorted((f for f in files if str(f).endswith(".html") and "/tut/" in str(f)), key=str)
    return [decode_html(f.locate().read_bytes())[0] for f in pages]


def test_agrees_with_trafilatura_on_real_documentation_pages():
    """Pygame's tutorials (Sphinx HTML shipped in its wheel): we keep at least 95 % of the words trafilatura
    keeps, and at least 90 % of ours are in its text too."""
    trafilatura = pytest.importorskip("trafilatura")
    pages = _pygame_pages()
    assert len(pages) >= 10
    ours_n = ref_n = common = 0
    for page in pages:
        ours = Counter(extract(page, "html").split())
        ref = Counter((trafilatura.extract(page, include_tables=True, favor_recall=True) or "").split())
        ours_n, ref_n, common = ours_n + ours.total(), ref_n + ref.total(), common + (ours & ref).total()
    assert common / ref_n >= 0.95
    assert common / ours_n >= 0.9


def test_link_lists_are_dropped_as_navigation_but_links_in_prose_are_kept():
    page = (
        "<p class='top'><a href=/>Home</a> || <a href=/help>Help Contents</a> || <a href=/ref>Reference</a></p>"
        "<p>The <a href=/rect>Rect</a> class stores rectangular coordinates.</p>"
        "<ul><li><a href=#a>Section A</a></li><li>Plain item</li></ul>"
    )
    assert html_to_text(page) == "The Rect class stores rectangular coordinates.\n\n- Plain item"
