"""What the curated corpus is made of: the sources (the book's real texts, or the user's own files) and the
curation pipeline's config. The pipeline's ``curate`` stage runs it; later stages only ever see its output.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llm_from_scratch.data.pipeline import PipelineConfig
from llm_from_scratch.data.sources import SOURCES, Document

CORPUS_VERSION = 4  # bump when the pipeline code changes what it keeps: cached corpora are keyed by it


@dataclass(frozen=True)
class CorpusConfig:
    """Which sources, how many documents of each, and the pipeline that curates them."""

    sources: tuple[str, ...] = ("shakespeare", "wikipedia", "usenet", "news")
    max_docs_per_source: int | None = None  # None: all of them
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


def source_documents(config: CorpusConfig) -> Iterator[Document]:
    """The raw documents of ``config``'s sources, in a fixed order. A source is a built-in name or a path: a file
    or folder of the user's own text (.txt, .jsonl, .gz, WARC/WET), read by ``data.sources.read_path``."""
    from llm_from_scratch.data.sources import read_path

    for name in config.sources:
        if name in SOURCES:
            docs = SOURCES[name]()
        elif Path(name).expanduser().exists():
            docs = read_path(Path(name).expanduser())
        else:
            raise ValueError(
                f"data.sources: {name!r} is neither a built-in source ({sorted(SOURCES)}) "
                "nor an existing file or folder"
            )
        yield from itertools.islice(docs, config.max_docs_per_source)
