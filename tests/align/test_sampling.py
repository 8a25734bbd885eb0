"""The batched, left-padded sampler reproduces one-at-a-time generation and stops on <|end|>."""

import torch

from llm_from_scratch.align.sampling import sample_replies
from llm_from_scratch.model import generate


def test_left_padded_batch_equals_single_generation(tok, model):
    prompts = [tok.encode(t) for t in ["To be, or not", "O", "What light through yonder window breaks and"]]
    stop = 4
    s = sample_replies(model, prompts, stop, n=1, max_new_tokens=12, temperature=0.0)
    for p, got in zip(prompts, s.tokens, strict=True):
        ref = generate(model, torch.tensor([p]), 12, temperature=0.0, stop_tokens=[stop])[0, len(p) :].tolist()
        if stop in ref:
            ref = ref[: ref.index(stop) + 1]
        assert got == ref


def test_stops_on_end_of_turn_and_reports_it(tok, model):
    # make <|end|> the most likely next token everywhere: every reply is exactly [<|end|>]
    bias = torch.zeros(model.config.vocab_size)
    bias[4] = 1e4
    model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    s = sample_replies(model, [tok.encode("Hello")] * 3, stop_id=4, n=2, max_new_tokens=5)
    assert s.tokens == [[4]] * 6 and all(s.ended) and s.prompt_index == [0, 0, 1, 1, 2, 2]


def test_sampling_is_seeded(tok, model):
    prompts = [tok.encode("Good morrow")]
    a = sample_replies(model, prompts, 4, n=3, max_new_tokens=8, seed=5)
    b = sample_replies(model, prompts, 4, n=3, max_new_tokens=8, seed=5)
    assert a.tokens == b.tokens and len(set(map(tuple, a.tokens))) > 1
