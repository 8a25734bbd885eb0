"""What the curated corpus is made of: the sources (the book's real texts, or the user's own files) and the
curation pipeline's config. The pipeline's `curate` stage runs it; later stages only ever see its output.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llm_from_scratch.data.pipeline import PipelineConfig
from llm_from_scratch.data.sources import SOURCES, Document
from llm_from_scratch.utils import Range, check_ranges

CORPUS_VERSION = 4  # bump when the pipeline code changes what it keeps: cached corpora are keyed by it


@dataclass(frozen=True)
class CorpusConfig:
    """Which sources, how many documents of each, and the pipeline that curates them."""

    sources: tuple[str, ...] = ("shakespeare", "wikipedia", "usenet", "news")
    max_docs_per_source: int | None = None  # None: all of them
    # a damaged or unreadable file among the user's own inputs: "skip" it (reported by name and reason, counted in
    # the corpus's stats, the complete documents before the damage kept) or "stop" the stage with one error
    on_bad_file: str = "skip"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def validate(self) -> CorpusConfig:
        """One `ValueError` naming the field, its value and the range (the config loader calls it)."""
        return check_ranges(
            self,
            {
                "max_docs_per_source": Range(ge=1, integer=True),
                "on_bad_file": Range(choices=("skip", "stop")),
            },
        )


def source_documents(config: CorpusConfig, reports: list | None = None) -> Iterator[Document]:
    """The raw documents of `config`'s sources, in a fixed order. A source is a built-in name or a path: a file
    or folder of the user's own text (.txt, .jsonl, .gz, WARC/WET), read by `data.sources.read_inputs` under the
    `on_bad_file` rule; each path's `InputReport` is appended to `reports`."""
    from llm_from_scratch.data.sources import read_inputs

    if config.on_bad_file not in ("skip", "stop"):
        raise ValueError(f"data.on_bad_file must be 'skip' or 'stop', got {config.on_bad_file!r}")
    for name in config.sources:
        if name in SOURCES:
            docs = SOURCES[name]()
        elif Path(name).expanduser().exists():
            docs, report = read_inputs([Path(name).expanduser()], on_error=config.on_bad_file)
            if reports is not None:
                reports.append(report)
        else:
            raise ValueError(
                f"data.sources: {name!r} is neither a built-in source ({sorted(SOURCES)}) "
                "nor an existing file or folder"
            )
        yield from itertools.islice(docs, config.max_docs_per_source)
