"""Hugging Face interoperability: export to a directory `transformers.LlamaForCausalLM.from_pretrained` loads
unchanged (`config.json` + `model.safetensors`), and import such a directory (or a loaded HF model) back.

The only differences between the two layouts are names and the fused projections: our `attn.qkv` is HF's
`q_proj`, `k_proj` and `v_proj` stacked row-wise, our `ffn.gate_up` is `gate_proj` over `up_proj`.
Both use the half-split (`rotate_half`) RoPE layout, so no permutation of the query/key rows is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.transformer import Transformer

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def hf_config_dict(config: ModelConfig) -> dict:
    """The `config.json` of the equivalent `LlamaForCausalLM` (transformers 5 format: `rope_parameters`)."""
    if getattr(config, "qk_norm", False):
        raise ValueError(
            "this model uses QK-norm, which Hugging Face's LlamaForCausalLM does not have: an export would load as a "
            "different model; train with qk_norm off to export it"
        )
    rope: dict = {"rope_type": "default", "rope_theta": config.rope_theta}
    if config.rope_scaling == "linear":
        rope = {"rope_type": "linear", "rope_theta": config.rope_theta, "factor": config.rope_factor}
    elif config.rope_scaling == "ntk":  # static NTK-aware scaling is nothing but a larger base
        d = config.head_dim
        rope = {"rope_type": "default", "rope_theta": config.rope_theta * config.rope_factor ** (d / (d - 2))}
    elif config.rope_scaling == "yarn":
        rope = {
            "rope_type": "yarn",
            "rope_theta": config.rope_theta,
            "factor": config.rope_factor,
            "original_max_position_embeddings": config.rope_original_context,
        }
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.ffn_hidden,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.context_length,
        "rms_norm_eps": config.norm_eps,
        "rope_parameters": rope,
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": config.init_std,
        "bos_token_id": None,
        "eos_token_id": 0,  # <|endoftext|> is id 0 of every tokenizer in this book
        "dtype": "float32",
    }


def config_from_hf(hf: dict) -> ModelConfig:
    """Our `ModelConfig` from a Llama `config.json` dict (old `rope_theta`/`rope_scaling` keys too)."""
    if hf.get("model_type") != "llama":
        raise ValueError(f"expected a Llama config (model_type 'llama'), got model_type={hf.get('model_type')!r}")
    n_heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or hf["hidden_size"] // n_heads
    if head_dim * n_heads != hf["hidden_size"]:
        raise ValueError("head_dim * num_attention_heads != hidden_size: such Llama variants are not supported")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    scaling = {"default": None, "linear": "linear", "yarn": "yarn"}.get(kind, "unsupported")
    if scaling == "unsupported":
        raise ValueError(f"RoPE type {kind!r} is not supported; use 'default', 'linear' or 'yarn'")
    return ModelConfig(
        vocab_size=hf["vocab_size"],
        context_length=hf["max_position_embeddings"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        ffn_hidden=hf["intermediate_size"],
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        init_std=hf.get("initializer_range", 0.02),
        rope_scaling=scaling,
        rope_factor=float(rope.get("factor", 1.0)) if scaling else 1.0,
        rope_original_context=rope.get("original_max_position_embeddings") if scaling else None,
    ).validate()


def to_hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under HF Llama's names, the fused projections split (contiguous copies)."""
    c = model.config
    q_rows, kv_rows = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    sd = model.state_dict()
    out = {"model.embed_tokens.weight": sd["tok_emb.weight"], "model.norm.weight": sd["norm.weight"]}
    for i in range(c.n_layers):
        p, hp = f"layers.{i}.", f"model.layers.{i}."
        q, k, v = sd[p + "attn.qkv.weight"].split((q_rows, kv_rows, kv_rows))
        gate, up = sd[p + "ffn.gate_up.weight"].split((c.ffn_hidden, c.ffn_hidden))
        out |= {
            hp + "self_attn.q_proj.weight": q,
            hp + "self_attn.k_proj.weight": k,
            hp + "self_attn.v_proj.weight": v,
            hp + "self_attn.o_proj.weight": sd[p + "attn.proj.weight"],
            hp + "mlp.gate_proj.weight": gate,
            hp + "mlp.up_proj.weight": up,
            hp + "mlp.down_proj.weight": sd[p + "ffn.down.weight"],
            hp + "input_layernorm.weight": sd[p + "attn_norm.weight"],
            hp + "post_attention_layernorm.weight": sd[p + "ffn_norm.weight"],
        }
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def from_hf_state_dict(hf_sd: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """HF Llama weights under our names, the projections fused; the inverse of `to_hf_state_dict`."""
    out = {"tok_emb.weight": hf_sd["model.embed_tokens.weight"], "norm.weight": hf_sd["model.norm.weight"]}
    out["lm_head.weight"] = hf_sd["model.embed_tokens.weight" if config.tie_embeddings else "lm_head.weight"]
    for i in range(config.n_layers):
        p, hp = f"layers.{i}.", f"model.layers.{i}."
        a = hp + "self_attn."
        out |= {
            p + "attn.qkv.weight": torch.cat(
                [hf_sd[a + n] for n in ("q_proj.weight", "k_proj.weight", "v_proj.weight")]
            ),
            p + "attn.proj.weight": hf_sd[a + "o_proj.weight"],
            p + "ffn.gate_up.weight": torch.cat([hf_sd[hp + "mlp.gate_proj.weight"], hf_sd[hp + "mlp.up_proj.weight"]]),
            p + "ffn.down.weight": hf_sd[hp + "mlp.down_proj.weight"],
            p + "attn_norm.weight": hf_sd[hp + "input_layernorm.weight"],
            p + "ffn_norm.weight": hf_sd[hp + "post_attention_layernorm.weight"],
        }
    return out


def export_hf(model: Transformer, out_dir: str | Path, tokenizer_files: Iterable[str | Path] = ()) -> Path:
    """Write `config.json` and `model.safetensors` that `LlamaForCausalLM.from_pretrained(out_dir)` loads,
    and copy the given tokenizer files (e.g. `tokenizer.json`, `tokenizer_config.json`) next to them."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(json.dumps(hf_config_dict(model.config), indent=2) + "\n")
    save_file(to_hf_state_dict(model), str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    for f in tokenizer_files:
        shutil.copy(f, out / Path(f).name)
    return out


def load_hf(path: str | Path, device: str = "cpu") -> Transformer:
    """A `Transformer` from a Llama checkpoint directory (`config.json` + `model.safetensors`)."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} not found: a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
                "(write one with llm_from_scratch.model.hf.export_hf)"
            )
    config = config_from_hf(json.loads((path / CONFIG_NAME).read_text()))
    model = Transformer(config).to(device)
    model.load_state_dict(from_hf_state_dict(load_file(str(path / WEIGHTS_NAME), device=device), config))
    return model


def from_hf_model(hf_model) -> Transformer:
    """A `Transformer` with the weights of an in-memory `LlamaForCausalLM`."""
    config = config_from_hf(hf_model.config.to_dict())
    model = Transformer(config)
    model.load_state_dict(from_hf_state_dict(hf_model.state_dict(), config))
    return model


def to_hf_model(model: Transformer):
    """The equivalent in-memory `transformers.LlamaForCausalLM` (fp32, eval mode, SDPA attention)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig(**hf_config_dict(model.config))
    hf_model = LlamaForCausalLM(hf_config)
    missing, unexpected = hf_model.load_state_dict(to_hf_state_dict(model), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"HF state dict mismatch: missing {missing}, unexpected {unexpected}")
    hf_model.tie_weights()
    return hf_model.eval()
