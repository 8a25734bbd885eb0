"""Held-out measurements for a model that did not come out of this run: a GGUF file such as the bundled
SmolLM2, next to the book's own model, on the book's validation documents.

Loss per token is not comparable across tokenizers (a token of a 49k vocabulary spells more text than one of an
8k vocabulary), so the language-model metric here is bits per byte of whole documents: each held-out document is
encoded with the model's own tokenizer, preceded by its `<|endoftext|>` token, and every one of its tokens is
predicted (in windows of the model's context); the summed loss is divided by the document's UTF-8 bytes. Any two
models measured this way on the same documents are comparable, whatever their tokenizers. The cloze task is the
eval stage's own (`llm_from_scratch.eval.cloze`), scored with the model's tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def bounded_documents(docs: Sequence[str], max_bytes: int | None) -> list[str]:
    """The opening of every document, an equal share of `max_bytes` UTF-8 bytes each (cut at a character
    boundary), so a bounded slice still draws on every held-out document; `None` keeps them whole."""
    if max_bytes is None:
        return [d for d in docs if d]
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
    share = max(max_bytes // max(len(docs), 1), 1)
    out = []
    for d in docs:
        cut = d.encode("utf-8")[:share].decode("utf-8", errors="ignore")
        if cut:
            out.append(cut)
    return out


@torch.inference_mode()
def documents_bits_per_byte(model, tokenizer, docs: Sequence[str], window: int | None = None) -> dict:
    """`{"bpb", "tokens", "bytes", "documents"}`: the model's cross-entropy on every token of `docs` (each
    preceded by the tokenizer's `<|endoftext|>` token), in bits per UTF-8 byte of the documents.

    Windows of `window` predicted tokens (default and at most the model's context) cover each document once;
    the first window of a document sees its end-of-text token as context, later ones the window before.
    """
    limit = model.config.context_length
    window = min(window or limit, limit)
    device = model.tok_emb.weight.device
    # the document separator of pretraining: `<|endoftext|>` (an instruct file's eot_id is its end of turn)
    separator = getattr(tokenizer, "special_tokens", {}).get("<|endoftext|>", tokenizer.eot_id)
    was = model.training
    model.eval()
    nats, n_tokens, n_bytes = 0.0, 0, 0
    for doc in docs:
        ids = [separator, *tokenizer.encode(doc)]
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window + 1]], device=device)
            logits, _ = model(chunk[:, :-1])
            nats += F.cross_entropy(logits[0].float(), chunk[0, 1:], reduction="sum").item()
            n_tokens += chunk.shape[1] - 1
        n_bytes += len(doc.encode("utf-8"))
    model.train(was)
    if n_bytes == 0:
        raise ValueError("no text to measure: the held-out documents are empty")
    return {"bpb": nats / math.log(2) / n_bytes, "tokens": n_tokens, "bytes": n_bytes, "documents": len(docs)}


def evaluate_external(model, tokenizer, docs: Sequence[str], cloze_items: Sequence, max_bytes: int | None) -> dict:
    """`{"lm": {...}, "cloze": {...}}` for `model` with its own `tokenizer`: bits per byte on a bounded slice of
    the held-out documents `docs` and the cloze task `cloze_items` (skipped when there are none)."""
    from llm_from_scratch.eval.cloze import score_cloze

    lm = documents_bits_per_byte(model, tokenizer, bounded_documents(docs, max_bytes))
    cloze = score_cloze(model, tokenizer, cloze_items) if cloze_items else {}
    return {"lm": lm, "cloze": cloze}
