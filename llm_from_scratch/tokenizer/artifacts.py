"""The tokenizer and shard artifacts later stages ask for, built on demand into ``cache_dir()/tokenizer/``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from llm_from_scratch.utils import atomic_path, cache_dir, config_key


@dataclass(frozen=True)
class TokenizerConfig:
    """Which tokenizer the model trains on. ``kind`` is ``"bpe"`` (this book's from-scratch BPE) or
    ``"sentencepiece"`` (with ``model_type`` ``"bpe"`` or ``"unigram"``)."""

    kind: str = "bpe"
    vocab_size: int = 8192
    pattern: str = "gpt4"
    model_type: str = "bpe"
    max_train_bytes: int | None = None  # train on a prefix of the corpus (the tiny preset)


@dataclass(frozen=True)
class ShardConfig:
    shard_tokens: int = 1 << 20
    val_fraction: float = 0.05


TOKENIZER_PRESETS = {
    "tiny": TokenizerConfig(vocab_size=512, max_train_bytes=1_000_000),
    "book": TokenizerConfig(vocab_size=8192),
}
SHARD_PRESETS = {
    "tiny": ShardConfig(shard_tokens=1 << 16, val_fraction=0.1),
    "book": ShardConfig(shard_tokens=1 << 20, val_fraction=0.05),
}


def _preset(table: dict, preset: str):
    if preset not in table:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(table)}")
    return table[preset]


def file_key(path: Path) -> str:
    """A content hash of an input file, so that a changed corpus means a new tokenizer, not a stale one."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def iter_jsonl_texts(path: str | Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def take_bytes(texts, max_bytes: int | None) -> Iterator[str]:
    """Whole documents until ``max_bytes`` of UTF-8 have been taken (at least one)."""
    total = 0
    for text in texts:
        if max_bytes is not None and total >= max_bytes:
            return
        total += len(text.encode("utf-8", "surrogatepass"))
        yield text


def load_tokenizer(path: str | Path):
    """Load either tokenizer from its file: ``*.json`` is a from-scratch BPE, ``*.model`` a sentencepiece model."""
    from llm_from_scratch.tokenizer.bpe import BPETokenizer
    from llm_from_scratch.tokenizer.spm import SentencePieceTokenizer

    path = Path(path)
    if path.suffix == ".model":
        return SentencePieceTokenizer.load(path)
    return BPETokenizer.load(path)


def train_from_config(config: TokenizerConfig, texts, progress: bool = False):
    """Train the tokenizer ``config`` describes on ``texts``."""
    texts = take_bytes(texts, config.max_train_bytes)
    if config.kind == "bpe":
        from llm_from_scratch.tokenizer.bpe import train_tokenizer

        return train_tokenizer(texts, config.vocab_size, config.pattern, progress=progress)
    if config.kind == "sentencepiece":
        from llm_from_scratch.tokenizer.spm import train_sentencepiece

        return train_sentencepiece(texts, config.vocab_size, config.model_type)
    raise ValueError(f"unknown tokenizer kind {config.kind!r}: use 'bpe' or 'sentencepiece'")


def tokenizer_path(preset: str = "book", config: TokenizerConfig | None = None, progress: bool = False) -> Path:
    """Where the tokenizer of ``preset`` lives, trained on the curated corpus on first use."""
    from llm_from_scratch.data.corpus import curated_corpus

    config = config or _preset(TOKENIZER_PRESETS, preset)
    corpus = curated_corpus(preset)
    key = config_key({"tokenizer": asdict(config), "corpus": file_key(corpus)})
    path = cache_dir() / "tokenizer" / key / ("tokenizer.model" if config.kind == "sentencepiece" else "tokenizer.json")
    if not path.exists():
        tok = train_from_config(config, iter_jsonl_texts(corpus), progress)
        with atomic_path(path) as tmp:
            tok.save(tmp)
    return path


def book_tokenizer(preset: str = "book", config: TokenizerConfig | None = None):
    """The tokenizer the book's model trains on, loaded from the cache (trained on first use)."""
    return load_tokenizer(tokenizer_path(preset, config))


def book_shards(preset: str = "book", num_workers: int = 2, progress: bool = False):
    """Train and validation shards of the curated corpus under ``book_tokenizer(preset)``, built on first use."""
    from llm_from_scratch.data.corpus import curated_corpus
    from llm_from_scratch.tokenizer.shards import ShardSet, write_shards

    tok_path = tokenizer_path(preset)
    tok = load_tokenizer(tok_path)
    config = _preset(SHARD_PRESETS, preset)
    corpus = curated_corpus(preset)
    key = config_key({"shards": asdict(config), "tokenizer": tok.fingerprint, "corpus": file_key(corpus)})
    directory = cache_dir() / "tokenizer" / tok_path.parent.name / f"shards-{key}"
    if (directory / "shards.json").exists():
        return ShardSet.load(directory)
    return write_shards(
        lambda: iter_jsonl_texts(corpus),
        tok,
        tok_path,
        directory,
        config.shard_tokens,
        config.val_fraction,
        num_workers,
        progress,
    )


__all__ = [
    "SHARD_PRESETS",
    "TOKENIZER_PRESETS",
    "ShardConfig",
    "TokenizerConfig",
    "book_shards",
    "book_tokenizer",
    "load_tokenizer",
    "tokenizer_path",
]
