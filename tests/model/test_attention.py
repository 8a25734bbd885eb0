"""Attention: written-out vs fused kernel, grouped-query heads, KV-cache parity."""

import pytest
import torch
import torch.nn.functional as F

from llm_from_scratch.model import KVCache, Transformer
from llm_from_scratch.model.attention import causal_attention, stable_softmax
from llm_from_scratch.pipeline import preset_config


def test_stable_softmax_survives_huge_scores_and_masks():
    s = torch.tensor([[1000.0, 999.0, float("-inf")]])
    p = stable_softmax(s)
    assert torch.allclose(p, torch.softmax(s, -1)) and p[0, 2] == 0 and torch.isfinite(p).all()


def test_written_out_attention_equals_fused_kernel():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 33, 16) for _ in range(3))
    out, weights = causal_attention(q, k, v, return_weights=True)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 33)) and weights[..., 0, 1:].abs().max() == 0


def test_grouped_query_attention_equals_repeated_kv_heads():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 8, 10, 16), torch.randn(1, 2, 10, 16), torch.randn(1, 2, 10, 16)
    gqa = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    full = causal_attention(q, k.repeat_interleave(4, dim=1), v.repeat_interleave(4, dim=1))
    assert torch.allclose(gqa, full, atol=1e-5)


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_kv_cache_gives_the_same_logits_as_a_full_pass(n_kv_heads):
    torch.manual_seed(0)
    config = preset_config("tiny").model.replace(n_kv_heads=n_kv_heads)
    model = Transformer(config).eval()
    idx = torch.randint(0, config.vocab_size, (2, 30))
    full, _ = model(idx)
    cache = KVCache(config, batch_size=2)
    pieces = [model(idx[:, :10], kv_cache=cache)[0]]  # prefill
    pieces += [model(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(10, 20)]  # one token at a time
    pieces.append(model(idx[:, 20:], kv_cache=cache)[0])  # a chunk after a prefix (explicit mask)
    assert cache.pos == 30
    assert (torch.cat(pieces, dim=1) - full).abs().max() < 1e-5


def test_cache_overflow_and_context_overflow_are_clear_errors():
    model = Transformer(preset_config("tiny").model).eval()
    cache = KVCache(preset_config("tiny").model, batch_size=1, max_len=4)
    with pytest.raises(ValueError, match="KVCache is full"):
        model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="context_length"):
        model(torch.zeros(1, preset_config("tiny").model.context_length + 1, dtype=torch.long))
