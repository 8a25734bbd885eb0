import pytest

from llm_from_scratch.data.normalize import (
    extract,
    normalize_text,
    play_markdown_to_text,
    strip_gutenberg,
    strip_html,
    strip_usenet,
    strip_wikitext,
)


def test_normalize_nfc_controls_and_whitespace():
    assert normalize_text("cafe\u0301") == "café"  # combining accent composed
    assert normalize_text("a\x00b\x07c\u200bd\ufeff") == "abcd"
    assert normalize_text("  a \t\u00a0 b  \r\n\r\n\r\n\r\nc  ") == "a b\n\nc"
    assert normalize_text("") == ""


def test_play_markdown_keeps_speakers_and_verse_lines():
    md = "# Hamlet\n\n## ACT I\n\n_Enter HAMLET_\n\n**HAMLET**  \nTo be, or not to be:  \nthat is the question.\n"
    out = normalize_text(play_markdown_to_text(md))
    assert out == "Hamlet\n\nACT I\n\n[Enter HAMLET]\n\nHAMLET:\nTo be, or not to be:\nthat is the question."


def test_wikitext_nested_templates_links_refs_and_tail_sections():
    wiki = (
        "{{Infobox|a={{nested|b}}|c=d}}\n'''Autism''' is a [[neurodevelopmental disorder|disorder]] of "
        "[[brain]] development.<ref name=x>{{cite|y}}</ref><!-- hidden -->\n[[File:X.jpg|thumb|a [[link]]]]\n"
        "== History ==\nIt was named in [http://example.org 1911].\n==References==\n{{reflist}}\n* a source"
    )
    out = normalize_text(strip_wikitext(wiki))
    assert out == "Autism is a disorder of brain development.\n\nHistory\nIt was named in 1911."


def test_html_drops_scripts_and_keeps_blocks():
    html = "<html><head><title>t</title></head><body><nav>Home</nav><p>One &amp; two.</p><div>Three</div>"
    html += "<script>alert(1)</script></body></html>"
    assert normalize_text(strip_html(html)) == "One & two.\n\nThree"


def test_usenet_headers_quotes_and_signature_removed_paragraphs_unwrapped():
    post = (
        "From: a@b.c\nSubject: Re: x\nReferences: <1@x>\n <2@y>\n\nIn article <1@x>\nb@c (B) writes:\n> quoted\n"
        "I disagree with\nthis entirely.\n\nSecond paragraph.\n--\nsig line\n"
    )
    assert normalize_text(strip_usenet(post)) == "I disagree with this entirely.\n\nSecond paragraph."


def test_gutenberg_header_and_footer():
    book = "licence blah\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nCall me Ishmael.\n"
    book += "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nmore licence"
    assert strip_gutenberg(book).strip() == "Call me Ishmael."
    assert strip_gutenberg("no markers") == "no markers"


def test_extract_dispatch_and_unknown_format():
    assert extract("**A**  \nhi", "markdown-play") == "A:\nhi"
    with pytest.raises(ValueError, match="unknown document format"):
        extract("x", "pdf")
