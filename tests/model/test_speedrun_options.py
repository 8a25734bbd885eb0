"""QK-norm and zero-initialised output projections: off by default (outputs and config files unchanged), and
when on, they do what the speedrun chapter says."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llm_from_scratch.model import Transformer
from llm_from_scratch.model.attention import causal_attention
from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.rope import apply_rope
from llm_from_scratch.pipeline import preset_config

TINY = preset_config("tiny").model


def test_defaults_leave_the_model_and_its_config_file_unchanged():
    assert "qk_norm" not in TINY.to_dict() and "zero_init_proj" not in TINY.to_dict()
    on = TINY.replace(qk_norm=True, zero_init_proj=True)
    assert ModelConfig.from_dict(on.to_dict()) == on
    torch.manual_seed(0)
    a = Transformer(TINY)
    torch.manual_seed(0)
    b = Transformer(TINY.replace(qk_norm=False))
    idx = torch.randint(0, TINY.vocab_size, (2, 16))
    assert torch.equal(a(idx)[0], b(idx)[0])


def _rms(t: torch.Tensor) -> torch.Tensor:
    """Each head's vector divided by its root mean square (no gain; F.rms_norm's default epsilon)."""
    return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + torch.finfo(t.dtype).eps)


def test_qk_norm_attention_equals_the_written_out_version():
    config = TINY.replace(qk_norm=True, n_kv_heads=TINY.n_heads)
    torch.manual_seed(0)
    model = Transformer(config).eval()
    attn, H, d = model.layers[0].attn, config.n_heads, config.head_dim
    x = torch.randn(2, 10, config.d_model) * 5  # large inputs: without the norm the scores would be large too
    cos, sin = model.rope_cos[:10], model.rope_sin[:10]
    qkv = attn.qkv(x).view(2, 10, 3 * H, d).transpose(1, 2)
    q, k, v = qkv.split(H, dim=1)
    y = causal_attention(apply_rope(_rms(q), cos, sin), apply_rope(_rms(k), cos, sin), v)
    expected = attn.proj(y.transpose(1, 2).reshape(2, 10, H * d))
    torch.testing.assert_close(attn(x, cos, sin), expected, atol=1e-4, rtol=1e-4)
    plain = TINY.replace(n_kv_heads=TINY.n_heads)
    torch.manual_seed(0)
    assert not torch.allclose(Transformer(plain).layers[0].attn(x, cos, sin), expected, atol=1e-3)


def test_zero_init_makes_every_block_the_identity_at_step_zero():
    config = TINY.replace(zero_init_proj=True)
    torch.manual_seed(0)
    model = Transformer(config)
    for layer in model.layers:
        assert not layer.attn.proj.weight.any() and not layer.ffn.down.weight.any()
        assert layer.attn.qkv.weight.std() > 0
    idx = torch.randint(0, config.vocab_size, (2, 12))
    logits, _ = model(idx)
    x = F.rms_norm(model.tok_emb(idx), (config.d_model,), model.norm.weight, config.norm_eps)
    torch.testing.assert_close(logits, model.lm_head(x))
