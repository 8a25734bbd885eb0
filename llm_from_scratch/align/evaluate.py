"""Held-out evaluation of a policy against its starting point: the target metric, KL, and the alignment tax."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EvalConfig:
    n_prompts: int = 256
    samples_per_prompt: int = 2
    max_new_tokens: int = 48
    temperature: float = 1.0
    ppl_batches: int = 8
    ppl_batch_size: int = 8
    seed: int = 1234


EVAL_PRESETS = {
    "tiny": EvalConfig(n_prompts=200, samples_per_prompt=2, max_new_tokens=24, ppl_batches=2),
    "book": EvalConfig(),
}


def decode_reply(tokenizer, ids: list[int], end: int) -> str:
    return tokenizer.decode([t for t in ids if t != end]).strip()


@torch.no_grad()
def sequence_kl(policy, reference, prompts, replies, batch_size: int = 64) -> float:
    """Monte-Carlo estimate of KL(pi || ref) per reply: the mean of ``log pi(y|x) - log ref(y|x)`` over replies
    ``y`` sampled from ``pi`` (unbiased; a single term may be negative, the mean may not be in expectation)."""
    from llm_from_scratch.align.sampling import pack_pairs, reply_logprobs

    device = policy.tok_emb.weight.device
    total = 0.0
    for b in range(0, len(prompts), batch_size):
        idx, labels = pack_pairs(prompts[b : b + batch_size], replies[b : b + batch_size])
        idx, labels = idx.to(device), labels.to(device)
        total += (reply_logprobs(policy, idx, labels) - reply_logprobs(reference, idx, labels)).sum().item()
    return total / max(len(prompts), 1)


@torch.no_grad()
def heldout_perplexity(model, preset: str, config: EvalConfig) -> float:
    """Perplexity on fixed windows of the pretraining corpus's validation shards (text no stage trained on)."""
    from llm_from_scratch.train.data import eval_windows, shard_data
    from llm_from_scratch.train.trainer import evaluate

    data = shard_data(preset)
    windows = eval_windows(data.val, config.ppl_batch_size, model.config.context_length, config.ppl_batches)
    return math.exp(evaluate(model, windows, str(model.tok_emb.weight.device), None))


def evaluate_policy(model, reference, tokenizer, examples, preset: str, config: EvalConfig, max_prompt: int) -> dict:
    """Sample replies to held-out ``examples``, verify them, estimate KL to ``reference`` and held-out perplexity.

    Returns ``{"rates": {...}, "kl": float, "ppl": float, "replies": [...], "checks": [...]}``.
    """
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.align.sampling import sample_replies
    from llm_from_scratch.align.verifier import rates, verify

    end = end_id(tokenizer)
    prompts = [encode_prompt(tokenizer, ex.prompt, max_prompt) for ex in examples[: config.n_prompts]]
    s = sample_replies(
        model,
        prompts,
        end,
        n=config.samples_per_prompt,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        seed=config.seed,
    )
    texts = [decode_reply(tokenizer, t, end) for t in s.tokens]
    checks = verify(texts, s.ended)
    p_ids = [prompts[i] for i in s.prompt_index]
    kl = sequence_kl(model, reference, p_ids, s.tokens) if reference is not None else 0.0
    return {
        "rates": rates(checks),
        "kl": kl,
        "ppl": heldout_perplexity(model, preset, config),
        "replies": texts,
        "prompt_index": s.prompt_index,
        "checks": checks,
    }
