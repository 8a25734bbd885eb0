"""HTML to plain text that keeps the page's paragraphs, as a browser lays them out.

A browser renders every run of whitespace inside a paragraph (including the line breaks an editor or a generator
put there) as one space, and starts a new line at every block element. Web pipelines need the same: C4's rule
(keep lines that end in terminal punctuation) judges *lines*, so an extractor that keeps the source's line breaks
inside a `<p>` hands it wrapped fragments and loses most of a page. Extractors such as trafilatura
(Barbaresi 2021) and resiliparse work this way; this one is the small, readable version:

- block elements (`p`, `div`, headings, `blockquote`, `table` rows, ...) become paragraph breaks;
- list items become lines that start with `- ` (a bullet, so Gopher's bullet-line rule still sees them);
- `<br>` is a line break, `<pre>` keeps its line breaks;
- `<!DOCTYPE>`, comments, `script`/`style`/`head` and navigation (`nav`, `footer`, elements whose
  class, id or role says navigation/sidebar/menu/footer) are dropped; entities are decoded;
- a block whose text is mostly link text (link density above 0.5, the signal jusText and trafilatura use for
  navigation bars and link lists) is dropped.

The parser is the standard library's tolerant, streaming `html.parser`: unclosed tags, stray end tags and deep
nesting never raise, and it runs in time linear in the page.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

# Elements whose whole subtree is not visible text (or is page chrome rather than content).
DROP_TAGS = frozenset(
    {"script", "style", "noscript", "head", "title", "nav", "footer", "svg", "template", "iframe", "object",
     "button", "select", "textarea", "form", "aside", "math", "canvas", "video", "audio", "map"}
)  # fmt: skip
BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "header", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
     "table", "thead", "tbody", "tfoot", "tr", "ul", "ol", "dl", "dt", "dd", "pre", "figure", "figcaption",
     "hr", "address", "details", "summary", "caption", "center", "fieldset", "body", "html"}
)  # fmt: skip
VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
                       "track", "wbr"})  # fmt: skip
# class/id/role words that mark page chrome (Sphinx's sidebars and "related" bars, blog menus, cookie banners).
CHROME = re.compile(
    r"(?:^|[\s_-])(nav|navbar|navigation|menu|sidebar|sphinxsidebar|sphinxsidebarwrapper|footer|breadcrumbs?|"
    r"related|cookie|banner|share|social|skip|headerlink|toc-backref)(?:$|[\s_-])",
    re.I,
)

MAX_LINK_DENSITY = 0.5  # a block with more of its characters inside <a> than this is navigation
_PARA, _LINE = "\x1e", "\x1f"  # sentinels for a paragraph break and a line break (control chars: never content)
_SENTINELS = re.compile(f"[{_PARA}{_LINE}]")
_WS = re.compile(r"[ \t\n\r\f\v]+")
_BREAKS = re.compile(f"[ {_PARA}{_LINE}]*[{_PARA}{_LINE}][ {_PARA}{_LINE}]*")


class _TextExtractor(HTMLParser):
    """Collects visible text with paragraph and line-break sentinels; whitespace is collapsed at the end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.drop_tag: str | None = None  # the tag that opened the subtree being dropped
        self.drop_depth = 0  # nesting of that same tag inside the dropped subtree
        self.pre = 0
        self.in_link = 0
        self.seg_start = 0  # parts index where the current block's text starts
        self.seg_chars = self.seg_link_chars = 0

    def _break(self, sentinel: str) -> None:
        """End the current block (dropping it if it is mostly links), then append a break sentinel."""
        if self.seg_chars and self.seg_link_chars > MAX_LINK_DENSITY * self.seg_chars:
            del self.parts[self.seg_start :]
        self.parts.append(sentinel)
        self.seg_start, self.seg_chars, self.seg_link_chars = len(self.parts), 0, 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.drop_tag is not None:
            if tag == self.drop_tag:
                self.drop_depth += 1
            return
        if tag not in VOID_TAGS and (tag in DROP_TAGS or self._is_chrome(attrs)):
            self.drop_tag, self.drop_depth = tag, 1
            return
        if tag == "br":
            self._break(_LINE)
        elif tag == "li":
            self._break(_LINE)
            self.parts.append("- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag == "a":
            self.in_link += 1
        elif tag in BLOCK_TAGS:
            self._break(_PARA)
            if tag == "pre":
                self.pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.drop_tag is None and tag == "br":
            self._break(_LINE)
        elif self.drop_tag is None and tag in BLOCK_TAGS:
            self._break(_PARA)

    def handle_endtag(self, tag: str) -> None:
        if self.drop_tag is not None:
            if tag == self.drop_tag:
                self.drop_depth -= 1
                if self.drop_depth == 0:
                    self.drop_tag = None
            return
        if tag == "li":
            self._break(_LINE)
        elif tag == "a":
            self.in_link = max(self.in_link - 1, 0)
        elif tag in BLOCK_TAGS:
            self._break(_PARA)
            if tag == "pre" and self.pre:
                self.pre -= 1

    def handle_data(self, data: str) -> None:
        if self.drop_tag is not None:
            return
        data = _SENTINELS.sub("", data)
        if self.pre:
            data = data.replace("\r\n", "\n").replace("\n", _LINE)
        n = len(data) - data.count(" ") - data.count("|")  # separators between nav links are not text
        self.seg_chars += n
        if self.in_link:
            self.seg_link_chars += n
        self.parts.append(data)

    @staticmethod
    def _is_chrome(attrs: list[tuple[str, str | None]]) -> bool:
        return any(value and name in ("class", "id", "role") and CHROME.search(value) for name, value in attrs)


def html_to_text(page: str) -> str:
    """Visible text of an HTML page with its paragraphs (blank-line separated) and list items (`- ` lines).

    Inline whitespace, including line breaks inside a paragraph, collapses to one space, as a browser renders it.
    """
    parser = _TextExtractor()
    parser.feed(page)
    parser.close()
    parser._break(_PARA)  # the last block
    text = "".join(parser.parts)
    # Whitespace outside <pre> collapses; the sentinels then become the only line structure.
    text = _WS.sub(" ", text)
    text = _BREAKS.sub(lambda m: "\n\n" if _PARA in m.group() else "\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


# --------------------------------------------------------------------------------------------------------------
# Bytes to str: the charset a page declares, else UTF-8 (never an exception)
# --------------------------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


_HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _codec(label: str) -> str | None:
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # WHATWG: a page labelled latin-1 / ascii is decoded as windows-1252 (a superset that browsers use).
    return "cp1252" if name in ("latin-1", "iso8859-1", "ascii") else name


def sniff_charset(data: bytes, content_type: str | None = None) -> str:
    """The encoding of an HTML page: a byte-order mark, else the charset of the HTTP `Content-Type` header
    (`content_type`, when the page came with one), else a `<meta charset>` in the first 2 KB (the HTML5 prescan
    window is 1024 bytes; some generators put it later), else UTF-8. Unknown names fall back to UTF-8."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return name
    m = _HTTP_CHARSET.search(content_type or "")
    if m and _codec(m.group(1)):
        return _codec(m.group(1))
    m = _META_CHARSET.search(data[:2048])
    if m:
        return _codec(m.group(1).decode("ascii")) or "utf-8"
    return "utf-8"


def decode_html(data: bytes, content_type: str | None = None) -> tuple[str, int]:
    """Decode an HTML page with its declared charset (`sniff_charset`: byte-order mark, HTTP header, `<meta>`);
    return the text and how many bytes could not be decoded (replaced by U+FFFD). A wrong declaration shows up
    as replaced bytes, which the pipeline counts and rejects."""
    name = sniff_charset(data, content_type)
    text = data.decode(name, errors="replace")
    return text, max(text.count("\ufffd") - data.count("\ufffd".encode()), 0)
