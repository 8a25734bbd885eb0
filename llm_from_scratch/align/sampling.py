"""Batched sampling of replies and log-probabilities of replies: the two model calls every alignment method needs.

Prompts have different lengths. To sample many at once they are *left*-padded and an attention mask hides the pad
keys; RoPE encodes only the distance between query and key, so a prompt shifted right by its padding gets exactly
the attention scores it would get alone (the tests compare with one-at-a-time generation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llm_from_scratch.model.generate import sample_next


def hidden_states(
    model, idx: torch.Tensor, attn_mask: torch.Tensor | None = None, kv_cache=None, start: int = 0
) -> torch.Tensor:
    """The final-norm hidden states `[B, T, d_model]` of the model's own modules, with an optional boolean
    `attn_mask` (`[B, 1, T, S]`, True = may attend) that `Transformer.forward` does not expose."""
    T = idx.shape[1]
    cos, sin = model.rope_cos[start : start + T], model.rope_sin[start : start + T]
    x = model.tok_emb(idx)
    for layer in model.layers:
        x = layer(x, cos, sin, kv_cache, attn_mask)
    if kv_cache is not None:
        kv_cache.pos += T
    return model.norm(x)


@dataclass
class Samples:
    """Replies to prompts: token ids (`<|end|>` included when the model wrote it), whether the turn ended."""

    prompt_index: list[int]
    tokens: list[list[int]]
    ended: list[bool]


@torch.no_grad()
def sample_replies(
    model,
    prompts: Sequence[Sequence[int]],
    stop_id: int,
    *,
    n: int = 1,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    top_k: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> Samples:
    """`n` replies to each prompt (token-id lists), sampled in left-padded batches with a KV cache; a reply ends
    at `stop_id` or after `max_new_tokens`. Seeded: the same call returns the same replies."""
    was_training = model.training
    model.eval()
    device = model.tok_emb.weight.device
    g = torch.Generator(device=device).manual_seed(seed)
    jobs = [(i, list(p)) for i, p in enumerate(prompts) for _ in range(n)]
    out = Samples([], [], [])
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b : b + batch_size]
        toks, ended = _sample_batch(model, [p for _, p in chunk], stop_id, max_new_tokens, temperature, top_k, g)
        out.prompt_index += [i for i, _ in chunk]
        out.tokens += toks
        out.ended += ended
    model.train(was_training)
    return out


def _sample_batch(model, prompts, stop_id, max_new_tokens, temperature, top_k, g):
    device = model.tok_emb.weight.device
    B, P = len(prompts), max(len(p) for p in prompts)
    total = P + max_new_tokens
    if total > model.rope_cos.shape[0]:
        raise ValueError(f"prompt ({P}) + max_new_tokens ({max_new_tokens}) exceed the context length")
    idx = torch.zeros(B, P, dtype=torch.long, device=device)
    valid = torch.zeros(B, total, dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        idx[i, P - len(p) :] = torch.tensor(p, device=device)
        valid[i, P - len(p) : P] = True
    pos = torch.arange(P, device=device)
    # A pad query may see itself, so its softmax is never over an empty set (which would give NaN keys later).
    mask = (pos[None, :] <= pos[:, None])[None] & (valid[:, None, :P] | torch.eye(P, dtype=torch.bool, device=device))
    cache = model.new_kv_cache(B, total)
    h = hidden_states(model, idx, mask[:, None], cache)
    logits = model.lm_head(h[:, -1])
    new = torch.zeros(B, max_new_tokens, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    steps = 0
    for t in range(max_new_tokens):
        nxt = sample_next(logits, temperature, top_k, None, g)
        nxt = torch.where(done, torch.full_like(nxt, stop_id), nxt)
        new[:, t] = nxt
        done |= nxt == stop_id
        steps = t + 1
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        valid[:, P + t] = True
        h = hidden_states(model, nxt[:, None], valid[:, None, None, : P + t + 1], cache, start=P + t)
        logits = model.lm_head(h[:, -1])
    toks, ended = [], []
    for row in new[:, :steps].tolist():
        if stop_id in row:
            toks.append(row[: row.index(stop_id) + 1])
            ended.append(True)
        else:
            toks.append(row)
            ended.append(False)
    return toks, ended


def pad_right(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def pack_pairs(prompts: Sequence[Sequence[int]], replies: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `idx` of prompt + reply and `labels` (next token, `-100` on prompt and padding).

    Right padding needs no attention mask in a causal model: the pads come after every real token, so no real
    token can attend to them, and their own positions are excluded from the loss by the `-100` labels.
    """
    ids = [list(p) + list(r) for p, r in zip(prompts, replies, strict=True)]
    labels = [[-100] * (len(p) - 1) + list(r) + [-100] for p, r in zip(prompts, replies, strict=True)]
    return pad_right(ids, 0), pad_right(labels, -100)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`log p(label_t | prefix)` at every position (0 where the label is `-100`) and the mask of counted ones."""
    mask = labels != -100
    logp = torch.gather(F.log_softmax(logits.float(), dim=-1), 2, labels.clamp_min(0)[..., None]).squeeze(-1)
    return logp * mask, mask


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """`log pi(y | x)`: the *sum* over the reply's tokens of their log-probabilities (prompt excluded)."""
    logp, _ = token_logprobs(logits, labels)
    return logp.sum(-1)


def reply_logprobs(model, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed reply log-probabilities of right-padded sequences under `model` (keeps the graph if grads are on)."""
    logits, _ = model(idx)
    return sequence_logprobs(logits, labels)
