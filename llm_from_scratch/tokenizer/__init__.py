"""Stage 2 of the pipeline: text to token ids (byte-level BPE from scratch, sentencepiece) and binary shards."""

from llm_from_scratch.tokenizer.artifacts import (
    SHARD_PRESETS,
    TOKENIZER_PRESETS,
    ShardConfig,
    TokenizerConfig,
    book_shards,
    book_tokenizer,
    load_tokenizer,
    tokenizer_path,
)
from llm_from_scratch.tokenizer.bpe import SPECIAL_TOKENS, BPETokenizer, train_tokenizer
from llm_from_scratch.tokenizer.loader import get_batch
from llm_from_scratch.tokenizer.shards import ShardSet, check_vocab, open_shard

__all__ = [
    "SHARD_PRESETS",
    "SPECIAL_TOKENS",
    "TOKENIZER_PRESETS",
    "BPETokenizer",
    "ShardConfig",
    "ShardSet",
    "TokenizerConfig",
    "book_shards",
    "book_tokenizer",
    "check_vocab",
    "get_batch",
    "load_tokenizer",
    "open_shard",
    "tokenizer_path",
    "train_tokenizer",
]
