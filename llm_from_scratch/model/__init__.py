"""Stage 3 of the pipeline: the model. A Llama-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU),
KV-cached generation, and export to / import from Hugging Face `LlamaForCausalLM`.

`from llm_from_scratch.model import ModelConfig, Transformer, generate` is the contract the training
and alignment stages build on.
"""

from llm_from_scratch.model.attention import CausalSelfAttention, KVCache, causal_attention
from llm_from_scratch.model.checkpoint import load_model, save_model
from llm_from_scratch.model.config import ARCHITECTURES, ModelConfig, get_config
from llm_from_scratch.model.generate import generate, sample_next, stream
from llm_from_scratch.model.hf import export_hf, load_hf
from llm_from_scratch.model.layers import RMSNorm, SwiGLU
from llm_from_scratch.model.rope import apply_rope, rope_cache
from llm_from_scratch.model.transformer import Block, Transformer, count_parameters, flops_per_token

__all__ = [
    "ARCHITECTURES",
    "Block",
    "CausalSelfAttention",
    "KVCache",
    "ModelConfig",
    "RMSNorm",
    "SwiGLU",
    "Transformer",
    "apply_rope",
    "causal_attention",
    "count_parameters",
    "export_hf",
    "flops_per_token",
    "generate",
    "get_config",
    "load_hf",
    "load_model",
    "rope_cache",
    "sample_next",
    "save_model",
    "stream",
]
