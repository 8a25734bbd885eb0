"""The curated corpus every later stage trains on, built on demand into the artifact cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from llm_from_scratch.data.sources import shakespeare_plays
from llm_from_scratch.utils import atomic_path, cache_dir

CORPUS_VERSION = 1


def curated_corpus(preset: str = "book") -> Path:
    """Path of the curated corpus (JSONL, one ``{"id", "source", "text"}`` object per line) for ``preset``.

    Built once into the cache and reused; the file is written atomically, so an interrupted build leaves
    no half-written corpus behind.
    """
    path = cache_dir() / "data" / f"corpus-{preset}-v{CORPUS_VERSION}.jsonl"
    if not path.exists():
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
            for doc in shakespeare_plays():
                out.write(json.dumps({"id": doc.id, "source": doc.source, "text": doc.text}) + "\n")
    return path


def iter_corpus_texts(preset: str = "book") -> Iterator[str]:
    """Stream the texts of the curated corpus, one document at a time."""
    with open(curated_corpus(preset), encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
