"""sentencepiece, the production tokenizer, behind the same interface as `BPETokenizer`."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

from llm_from_scratch.tokenizer.bpe import SPECIAL_TOKENS


class SentencePieceTokenizer:
    """`encode`, `decode`, `vocab_size`, `special_tokens`, `eot_id` and `fingerprint` over a
    sentencepiece model. The special tokens are user-defined symbols at ids 0..4, so that both tokenizers of this
    book agree on them; sentencepiece's own `<unk>` follows them (`byte_fallback` means it is never produced).
    """

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.special_tokens = {
            self.sp.id_to_piece(i): i
            for i in range(self.sp.get_piece_size())
            if self.sp.is_control(i) is False and self.sp.id_to_piece(i) in SPECIAL_TOKENS
        }

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def eot_id(self) -> int:
        return self.special_tokens["<|endoftext|>"]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_proto).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode(list(ids))

    def save(self, path: str | Path) -> Path:
        """Write the `.model` file (sentencepiece's protobuf, readable by any sentencepiece release)."""
        path = Path(path)
        path.write_bytes(self.model_proto)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SentencePieceTokenizer:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"sentencepiece model {path} does not exist")
        return cls(path.read_bytes())

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(vocab_size={self.vocab_size}, fingerprint={self.fingerprint})"


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int,
    model_type: str = "bpe",
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    num_threads: int = 2,
) -> SentencePieceTokenizer:
    """Train a sentencepiece model on `texts` (one document per item) with the settings a byte-exact LM needs.

    - `byte_fallback=True`: a character outside the vocabulary becomes its UTF-8 bytes, never `<unk>`.
    - `normalization_rule_name="identity"`, `remove_extra_whitespaces=False`, `add_dummy_prefix=False`: the
      defaults (NFKC, collapsing runs of spaces, a space before every text) would make `decode(encode(s)) != s`,
      which ruins indented code and poetry layouts.
    - `split_digits=True`: numbers are spelt digit by digit, as LLaMA does, so arithmetic sees aligned digits.
    - `user_defined_symbols`: the chat and end-of-text tokens, which are never split and get ids 0..4.
    """
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        byte_fallback=True,
        user_defined_symbols=list(special_tokens),
        unk_id=len(list(special_tokens)),
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        max_sentence_length=1 << 30,  # whole documents, not lines: newlines are text the model must learn
        num_threads=num_threads,
        minloglevel=2,
    )
    return SentencePieceTokenizer(model.getvalue())
