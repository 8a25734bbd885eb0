"""Stage 2 of the pipeline: text to token ids (byte-level BPE from scratch, sentencepiece) and binary shards."""

from llm_from_scratch.tokenizer.bpe import SPECIAL_TOKENS, BPETokenizer, train_tokenizer
from llm_from_scratch.tokenizer.build import ShardConfig, TokenizerConfig, bytes_per_token, load_tokenizer
from llm_from_scratch.tokenizer.shards import ShardSet, check_vocab, open_shard

__all__ = [
    "SPECIAL_TOKENS",
    "BPETokenizer",
    "ShardConfig",
    "ShardSet",
    "TokenizerConfig",
    "bytes_per_token",
    "check_vocab",
    "load_tokenizer",
    "open_shard",
    "train_tokenizer",
]
