"""Parity with Hugging Face ``LlamaForCausalLM``: whole model and each piece, export and import."""

import json

import pytest
import torch

pytest.importorskip("transformers")
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama as hf_llama

from llm_from_scratch.model import Transformer
from llm_from_scratch.model.hf import (
    config_from_hf,
    export_hf,
    from_hf_model,
    hf_config_dict,
    load_hf,
    to_hf_state_dict,
)
from llm_from_scratch.model.layers import RMSNorm, SwiGLU
from llm_from_scratch.model.rope import apply_rope, rope_cache
from llm_from_scratch.pipeline import preset_config

TOL = 1e-4
CONFIG = preset_config("tiny").model.replace(
    n_layers=3, n_heads=8, n_kv_heads=2, d_model=128, ffn_hidden=352, rope_theta=500.0
)


def _random_model(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    model = Transformer(config).eval()
    with torch.no_grad():  # non-trivial norm gains, so a swapped norm weight would show
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("tie", [True, False])
def test_exported_model_loads_in_transformers_with_equal_logits(tmp_path, tie):
    model = _random_model(CONFIG.replace(tie_embeddings=tie))
    export_hf(model, tmp_path)
    hf = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, CONFIG.vocab_size, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, hf_logits = model(idx)[0], hf(idx).logits
    assert (ours - hf_logits).abs().max() <= TOL
    assert ours.abs().max() > 0.1  # the comparison is not between two near-zero tensors


@pytest.mark.parametrize("kind", ["linear", "ntk", "yarn"])
def test_context_extension_matches_transformers(tmp_path, kind):
    model = _random_model()
    extended = Transformer(CONFIG.with_context_extension(kind, 4.0)).eval()
    extended.load_state_dict(model.state_dict())
    export_hf(extended, tmp_path)
    hf = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, CONFIG.vocab_size, (1, 4 * CONFIG.context_length))
    with torch.no_grad():
        assert (extended(idx)[0] - hf(idx).logits).abs().max() <= TOL


def test_import_roundtrip(tmp_path):
    model = _random_model()
    export_hf(model, tmp_path, tokenizer_files=[])
    back = load_hf(tmp_path)
    assert back.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    hf = LlamaForCausalLM.from_pretrained(tmp_path)
    again = from_hf_model(hf)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())


def test_export_copies_tokenizer_files_and_writes_llama_config(tmp_path):
    tok = tmp_path / "tokenizer.json"
    tok.write_text("{}")
    out = export_hf(_random_model(), tmp_path / "export", tokenizer_files=[tok])
    assert (out / "tokenizer.json").read_text() == "{}"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_key_value_heads"] == 2
    assert config_from_hf(cfg) == CONFIG


def test_load_hf_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_hf(tmp_path)


def _hf_config():
    return LlamaConfig(**hf_config_dict(CONFIG))


def test_rope_matches_hf_rotary_embedding():
    hf_rope = hf_llama.LlamaRotaryEmbedding(_hf_config())
    x = torch.randn(2, 8, 40, CONFIG.head_dim)
    k = torch.randn(2, 2, 40, CONFIG.head_dim)
    pos = torch.arange(40)[None].expand(2, -1)
    cos_hf, sin_hf = hf_rope(x, pos)
    cos, sin = rope_cache(CONFIG.head_dim, 40, CONFIG.rope_theta)
    assert (cos - cos_hf[0]).abs().max() <= 1e-6 and (sin - sin_hf[0]).abs().max() <= 1e-6
    q_hf, k_hf = hf_llama.apply_rotary_pos_emb(x, k, cos_hf, sin_hf)
    assert (apply_rope(x, cos, sin) - q_hf).abs().max() <= TOL
    assert (apply_rope(k, cos, sin) - k_hf).abs().max() <= TOL


def test_rmsnorm_matches_hf():
    ours = RMSNorm(CONFIG.d_model, eps=1e-5)
    theirs = hf_llama.LlamaRMSNorm(CONFIG.d_model, eps=1e-5)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        theirs.weight.copy_(ours.weight)
    x = 3 * torch.randn(4, 10, CONFIG.d_model)
    assert (ours(x) - theirs(x)).abs().max() <= TOL


def test_swiglu_matches_hf_mlp():
    torch.manual_seed(0)
    ours = SwiGLU(CONFIG.d_model, CONFIG.ffn_hidden)
    theirs = hf_llama.LlamaMLP(_hf_config())
    gate, up = ours.gate_up.weight.detach().split(CONFIG.ffn_hidden)
    theirs.load_state_dict({"gate_proj.weight": gate, "up_proj.weight": up, "down_proj.weight": ours.down.weight})
    x = torch.randn(4, 10, CONFIG.d_model)
    assert (ours(x) - theirs(x)).abs().max() <= TOL


def test_hf_state_dict_names():
    names = set(to_hf_state_dict(_random_model()))
    assert "model.layers.2.self_attn.k_proj.weight" in names and "lm_head.weight" not in names
    assert len(names) == 2 + 9 * CONFIG.n_layers
