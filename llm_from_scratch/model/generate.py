"""Autoregressive decoding: greedy, temperature, top-k and top-p sampling, stop tokens, streaming, KV cache."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from llm_from_scratch.model.transformer import Transformer


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to `-inf` every logit outside the `top_k` largest and outside the nucleus of mass `top_p`.

    The nucleus (Holtzman et al. 2020) is the smallest set of most likely tokens whose probabilities sum to at
    least `top_p`: a token is dropped when the tokens ranked above it already reach `top_p`.
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of `logits` (`[B, vocab]`); `temperature == 0` is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def stream(
    model: Transformer,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_tokens: Iterable[int] = (),
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every sequence in `idx` (`[B, T]`), one `[B]` tensor per step.

    With `use_cache` the prompt is processed once (prefill) and each step feeds only the newest token; without
    it every step re-runs the whole (cropped) sequence, which is the slow reference the cache must reproduce.
    A sequence that has produced a stop token keeps emitting that token; the stream ends when all have stopped.
    """
    was_training = model.training
    model.eval()
    try:
        limit = model.rope_cos.shape[0]
        stops = torch.tensor(sorted(set(stop_tokens)), dtype=torch.long, device=idx.device)
        finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        last_stop = torch.zeros(idx.shape[0], dtype=torch.long, device=idx.device)
        if use_cache and idx.shape[1] + max_new_tokens > limit:
            raise ValueError(
                f"prompt ({idx.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds the context length {limit} "
                "with use_cache=True; shorten them, or pass use_cache=False to slide a window over the context"
            )
        cache = model.new_kv_cache(idx.shape[0], idx.shape[1] + max_new_tokens) if use_cache else None
        seq, step_input = idx, idx
        fused = getattr(model, "decode_step", None)
        for _ in range(max_new_tokens):
            if cache is None:
                step_input = seq[:, -limit:]
            if fused is not None and cache is not None and step_input.shape == (1, 1):
                logits = fused(step_input, cache)  # the opt-in one-call decode step (`quant.prepare_decode`)
            else:
                logits, _ = model(step_input, kv_cache=cache, last_only=True)
            nxt = sample_next(logits[:, -1], temperature, top_k, top_p, generator)
            if stops.numel():
                nxt = torch.where(finished, last_stop, nxt)
                hit = torch.isin(nxt, stops) & ~finished
                last_stop = torch.where(hit, nxt, last_stop)
                finished |= hit
            yield nxt
            if stops.numel() and bool(finished.all()):
                return
            step_input = nxt[:, None]
            if cache is None:
                seq = torch.cat((seq, step_input), dim=1)
    finally:
        model.train(was_training)


def generate(model: Transformer, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """`idx` followed by up to `max_new_tokens` generated tokens (`[B, T + n]`); arguments as `stream`."""
    new = list(stream(model, idx, max_new_tokens, **kwargs))
    return torch.cat([idx, *(t[:, None] for t in new)], dim=1) if new else idx
