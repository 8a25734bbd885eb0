"""Decoding: greedy, sampling filters, stop tokens, streaming, and cached == uncached."""

import torch

from llm_from_scratch.model import Transformer, generate, stream
from llm_from_scratch.model.generate import filter_logits, sample_next
from llm_from_scratch.pipeline import preset_config


def _model(seed=0):
    torch.manual_seed(seed)
    return Transformer(preset_config("tiny").model).eval()


def test_top_k_keeps_exactly_k():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0, 2.5]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, False, False, True]]


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(filter_logits(probs.log(), top_p=0.75)).tolist()
    assert kept == [[True, True, False, False]]  # 0.5 < 0.75, 0.5 + 0.3 >= 0.75
    assert torch.isfinite(filter_logits(probs.log(), top_p=0.1)).sum() == 1  # at least the top token survives


def test_greedy_is_argmax_and_temperature_zero():
    logits = torch.randn(3, 50)
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))


def test_sampling_follows_the_distribution():
    probs = torch.tensor([0.7, 0.2, 0.1])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(probs.log()[None], 1.0, generator=g) for _ in range(3000)]).flatten()
    freq = torch.bincount(draws, minlength=3).float() / 3000
    assert (freq - probs).abs().max() < 0.03


def test_cached_and_uncached_generation_give_identical_tokens():
    model = _model()
    prompt = torch.randint(0, 512, (3, 7), generator=torch.Generator().manual_seed(1))
    for kwargs in ({"temperature": 0.0}, {"temperature": 0.9, "top_k": 50, "top_p": 0.9}):
        fast = generate(model, prompt, 40, use_cache=True, generator=torch.Generator().manual_seed(2), **kwargs)
        slow = generate(model, prompt, 40, use_cache=False, generator=torch.Generator().manual_seed(2), **kwargs)
        assert torch.equal(fast, slow)


def test_uncached_generation_slides_past_the_context():
    model = _model()
    out = generate(model, torch.zeros(1, 60, dtype=torch.long), 20, use_cache=False)
    assert out.shape == (1, 80)


def test_stop_tokens_end_generation_and_streaming_matches():
    model = _model()
    prompt = torch.zeros(1, 4, dtype=torch.long)
    free = generate(model, prompt, 30)
    stop = int(free[0, 10])  # the 7th generated token becomes a stop token
    first = next(i for i in range(4, 34) if free[0, i] == stop)
    stopped = generate(model, prompt, 30, stop_tokens=[stop])
    assert torch.equal(stopped, free[:, : first + 1])
    streamed = [int(t) for t in stream(model, prompt, 30, stop_tokens=[stop])]
    assert streamed == stopped[0, 4:].tolist()


def test_batch_rows_that_stopped_keep_their_stop_token():
    model = _model()
    prompt = torch.randint(0, 512, (2, 4), generator=torch.Generator().manual_seed(3))
    free = generate(model, prompt, 12)
    stop = int(free[0, 5])
    out = generate(model, prompt, 12, stop_tokens=[stop])
    row = out[0, 4:].tolist()
    assert row[row.index(stop) :] == [stop] * (len(row) - row.index(stop))
