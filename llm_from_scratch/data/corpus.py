"""The curated corpus every later stage trains on, built on demand into the artifact cache.

``curated_corpus(preset)`` runs the curation pipeline (:mod:`llm_from_scratch.data.pipeline`) over the real
sources (Shakespeare's plays, the Wikipedia sample, Usenet posts, news articles) and caches the result, keyed by
the preset's configuration; later stages only ever see its output.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llm_from_scratch.data.pipeline import PipelineConfig, run_pipeline
from llm_from_scratch.data.sources import SOURCES, Document
from llm_from_scratch.utils import atomic_path, cache_dir, config_key

CORPUS_VERSION = 3  # bump when the pipeline code changes what it keeps: cached corpora are keyed by it


@dataclass(frozen=True)
class CorpusConfig:
    """Which sources, how many documents of each, and the pipeline that curates them."""

    sources: tuple[str, ...] = ("shakespeare", "wikipedia", "usenet", "news")
    max_docs_per_source: int | None = None  # None: all of them
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


PRESETS: dict[str, CorpusConfig] = {
    # seconds: a few plays and articles; the reference profanity model needs no training
    "tiny": CorpusConfig(max_docs_per_source=4, pipeline=PipelineConfig(toxicity="reference")),
    # what the chapters use: every source in full (~8 MB of text after extraction), our own toxicity classifier
    "book": CorpusConfig(),
}


def corpus_config(preset: str) -> CorpusConfig:
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown corpus preset {preset!r}: choose from {sorted(PRESETS)}") from None


def source_documents(config: CorpusConfig) -> Iterator[Document]:
    """The raw documents of ``config``'s sources, in a fixed order."""
    for name in config.sources:
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r}: choose from {sorted(SOURCES)}")
        yield from itertools.islice(SOURCES[name](), config.max_docs_per_source)


def _paths(preset: str) -> tuple[Path, Path, Path]:
    key = config_key({"version": CORPUS_VERSION, "config": corpus_config(preset)})
    root = cache_dir() / "data"
    return (
        root / f"corpus-{preset}-{key}.jsonl",
        root / f"rejected-{preset}-{key}.jsonl",
        root / f"stats-{preset}-{key}.json",
    )


def curated_corpus(preset: str = "book", workers: int = 1, progress: bool = False) -> Path:
    """Path of the curated corpus (JSONL, one ``{"id", "source", "text"}`` object per line) for ``preset``.

    Built once into the cache and reused; the files are written atomically, so an interrupted build leaves no
    half-written corpus behind. The rejected documents (with stage and reason) and the per-stage statistics are
    written next to it (see :func:`curation_stats`).
    """
    path, rejected, stats = _paths(preset)
    if not path.exists():
        config = corpus_config(preset)
        with atomic_path(rejected) as rej_tmp, atomic_path(stats) as stats_tmp, atomic_path(path) as tmp:
            result = run_pipeline(
                source_documents(config), config.pipeline, tmp, rej_tmp, workers=workers, progress=progress
            )
            stats_tmp.write_text(json.dumps(result.to_json(), indent=1))
    return path


def curation_stats(preset: str = "book") -> dict:
    """Per-stage statistics of the curated corpus of ``preset`` (builds it if needed)."""
    curated_corpus(preset)
    return json.loads(_paths(preset)[2].read_text())


def rejected_documents(preset: str = "book") -> Iterator[dict]:
    """The documents the pipeline rejected for ``preset``: ``{"id", "source", "stage", "reason", "text"}``."""
    curated_corpus(preset)
    with open(_paths(preset)[1], encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def iter_corpus_texts(preset: str = "book") -> Iterator[str]:
    """Stream the texts of the curated corpus, one document at a time."""
    with open(curated_corpus(preset), encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
