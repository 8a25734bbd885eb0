"""Build or load a tokenizer from its config; the shard config. The pipeline's resolver keys and caches both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llm_from_scratch.utils import Range, check_ranges


@dataclass(frozen=True)
class TokenizerConfig:
    """Which tokenizer the model trains on. `kind` is `"bpe"` (this book's from-scratch BPE) or
    `"sentencepiece"` (with `model_type` `"bpe"` or `"unigram"`)."""

    kind: str = "bpe"
    vocab_size: int = 8192
    pattern: str = "digits"  # GPT-4's pre-tokenizer with single digits (tokenizer/pretokenize.py)
    model_type: str = "bpe"
    max_train_bytes: int | None = None  # train on a prefix of the corpus (the tiny preset)

    def validate(self) -> TokenizerConfig:
        """One `ValueError` naming the field, its value and the range (the config loader calls it)."""
        if self.kind == "bpe":
            from llm_from_scratch.tokenizer.bpe import check_pattern

            check_pattern(self.pattern, "tokenizer.pattern")
        return check_ranges(
            self,
            {
                "kind": Range(choices=("bpe", "sentencepiece")),
                "vocab_size": Range(ge=261, integer=True),
                "model_type": Range(choices=("bpe", "unigram")),
                "max_train_bytes": Range(ge=1, integer=True),
            },
        )


@dataclass(frozen=True)
class ShardConfig:
    shard_tokens: int = 1 << 20
    val_fraction: float = 0.05

    def validate(self) -> ShardConfig:
        """One `ValueError` naming the field, its value and the range (the config loader calls it)."""
        return check_ranges(
            self,
            {
                "shard_tokens": Range(ge=1024, integer=True),
                "val_fraction": Range(gt=0, lt=1),
            },
        )


def iter_jsonl_texts(path: str | Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def take_bytes(texts, max_bytes: int | None) -> Iterator[str]:
    """Whole documents until `max_bytes` of UTF-8 have been taken (at least one)."""
    total = 0
    for text in texts:
        if max_bytes is not None and total >= max_bytes:
            return
        total += len(text.encode("utf-8", "surrogatepass"))
        yield text


def bytes_per_token(tokenizer, texts) -> float:
    """Compression: UTF-8 bytes per token over `texts` (higher means shorter sequences)."""
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return n_bytes / sum(len(tokenizer.encode(t)) for t in texts)


def load_tokenizer(path: str | Path):
    """Load either tokenizer from its file: `*.json` is a from-scratch BPE, `*.model` a sentencepiece model."""
    from llm_from_scratch.tokenizer.bpe import BPETokenizer
    from llm_from_scratch.tokenizer.spm import SentencePieceTokenizer

    path = Path(path)
    if path.suffix == ".model":
        return SentencePieceTokenizer.load(path)
    return BPETokenizer.load(path)


def train_from_config(config: TokenizerConfig, texts, progress: bool = False):
    """Train the tokenizer `config` describes on `texts`."""
    texts = take_bytes(texts, config.max_train_bytes)
    if config.kind == "bpe":
        from llm_from_scratch.tokenizer.bpe import train_tokenizer

        return train_tokenizer(texts, config.vocab_size, config.pattern, progress=progress)
    if config.kind == "sentencepiece":
        from llm_from_scratch.tokenizer.spm import train_sentencepiece

        return train_sentencepiece(texts, config.vocab_size, config.model_type)
    raise ValueError(f"unknown tokenizer kind {config.kind!r}: use 'bpe' or 'sentencepiece'")
