"""Held-out evaluation of a policy against its starting point: sample, decode, verify, and the KL between them.

One routine, `alignment_metrics`, serves the chapters, the evaluation stage and the report card."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def decode_reply(tokenizer, ids: list[int], end: int) -> str:
    return tokenizer.decode([t for t in ids if t != end]).strip()


@torch.no_grad()
def sequence_kl(policy, reference, prompts, replies, batch_size: int = 64) -> float:
    """Monte-Carlo estimate of KL(pi || ref) per reply: the mean of `log pi(y|x) - log ref(y|x)` over replies
    `y` sampled from `pi` (unbiased; a single term may be negative, the mean may not be in expectation)."""
    from llm_from_scratch.align.sampling import pack_pairs, reply_logprobs

    device = policy.tok_emb.weight.device
    total = 0.0
    for b in range(0, len(prompts), batch_size):
        idx, labels = pack_pairs(prompts[b : b + batch_size], replies[b : b + batch_size])
        idx, labels = idx.to(device), labels.to(device)
        total += (reply_logprobs(policy, idx, labels) - reply_logprobs(reference, idx, labels)).sum().item()
    return total / max(len(prompts), 1)


def alignment_metrics(
    model,
    reference,
    tokenizer,
    prompts: Sequence[list[int]],
    *,
    n: int = 2,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    seed: int = 1234,
) -> dict:
    """Sample `n` replies to each prompt, decode them, check them with the verifier, and estimate the KL to
    `reference` (0 when it is `None`). Prompts longer than the room the context leaves are cut from the left.

    Returns `{"rates": {...}, "kl": float, "replies": [...], "prompt_index": [...], "checks": [...]}`.
    """
    from llm_from_scratch.align.chat import end_id
    from llm_from_scratch.align.sampling import sample_replies
    from llm_from_scratch.align.verifier import rates, verify

    end = end_id(tokenizer)
    limit = model.config.context_length - max_new_tokens
    if limit < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a context of {model.config.context_length}"
        )
    prompts = [list(p)[-limit:] for p in prompts]
    s = sample_replies(model, prompts, end, n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    texts = [decode_reply(tokenizer, t, end) for t in s.tokens]
    checks = verify(texts, s.ended)
    kl = sequence_kl(model, reference, [prompts[i] for i in s.prompt_index], s.tokens) if reference is not None else 0.0
    return {"rates": rates(checks), "kl": kl, "replies": texts, "prompt_index": s.prompt_index, "checks": checks}
