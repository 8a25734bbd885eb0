"""The tokenization chapter's experiments: compression against vocabulary size, token pieces, speed."""

from __future__ import annotations

import time
from collections.abc import Sequence

from llm_from_scratch.tokenizer.build import bytes_per_token
from llm_from_scratch.tokenizer.shards import doc_hash, validation_threshold


def split_documents(texts: Sequence[str], val_fraction: float = 0.05) -> tuple[list[str], list[str]]:
    """Train and validation documents by the same hash rule the shards use, so that tokenizers are compared on
    text none of them was trained on."""
    hashes = [doc_hash(t) for t in texts]
    threshold = validation_threshold(hashes, val_fraction)
    train = [t for t, h in zip(texts, hashes, strict=True) if h > threshold]
    val = [t for t, h in zip(texts, hashes, strict=True) if h <= threshold]
    return train, val


def compression_curve(train: Sequence[str], val: Sequence[str], sizes: dict[str, Sequence[int]]) -> list[dict]:
    """Bytes per token on `val` for each tokenizer kind (`"ours"`, `"spm-bpe"`, `"spm-unigram"`) at each of
    its vocabulary sizes, trained on `train`, with the training time in seconds.

    The from-scratch BPE is trained once, to its largest size, and cut down with `BPETokenizer.truncated`
    (its `train_s` is that one run); sentencepiece is trained once per size, because its unigram model prunes a
    large seed vocabulary, so two sizes differ in more than their last merges.
    """
    from llm_from_scratch.tokenizer.bpe import train_tokenizer
    from llm_from_scratch.tokenizer.spm import train_sentencepiece

    rows = []
    for kind, vocab_sizes in sizes.items():
        if kind == "ours":
            seconds, full = timed(train_tokenizer, train, max(vocab_sizes))
            for v in vocab_sizes:
                rows.append(
                    {
                        "kind": kind,
                        "vocab": v,
                        "bytes/token": bytes_per_token(full.truncated(v), val),
                        "train_s": seconds,
                    }
                )
        elif kind.startswith("spm-"):
            for v in vocab_sizes:
                seconds, tok = timed(train_sentencepiece, train, v, model_type=kind.removeprefix("spm-"))
                rows.append({"kind": kind, "vocab": v, "bytes/token": bytes_per_token(tok, val), "train_s": seconds})
        else:
            raise ValueError(f"unknown tokenizer kind {kind!r}: use 'ours', 'spm-bpe' or 'spm-unigram'")
    return rows


def pieces(tokenizer, text: str) -> list[str]:
    """The text of each token of `text`; a token that is not whole UTF-8 characters shows as `<0xNN..>`."""
    out = []
    for i in tokenizer.encode(text):
        piece = tokenizer.decode([i])
        if "\ufffd" in piece:  # part of a character: show its bytes
            if hasattr(tokenizer, "vocab"):
                piece = "<0x" + tokenizer.vocab[i].hex().upper() + ">"
            else:
                piece = tokenizer.sp.id_to_piece(i)  # sentencepiece's byte-fallback pieces are named <0xNN>
        out.append(piece.replace("\n", "\\n"))
    return out


def show(tokenizer, text: str) -> str:
    """`text` cut into its tokens, `|` between them, and the count."""
    p = pieces(tokenizer, text)
    return f"{len(p):3d} tokens: " + "|".join(p)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result
