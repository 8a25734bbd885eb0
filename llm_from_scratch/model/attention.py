"""Causal self-attention: the written-out reference, the fused multi-head / grouped-query module, and its KV cache."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.rope import apply_rope


def stable_softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """`exp(s - max s) / sum exp(s - max s)`: the same value as the textbook softmax, but `exp` never
    overflows, and a fully masked entry (`-inf`) becomes exactly 0."""
    shifted = scores - scores.amax(dim=dim, keepdim=True)
    weights = shifted.exp()
    return weights / weights.sum(dim=dim, keepdim=True)


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, return_weights: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention with a causal mask, written out (`[B, H, T, d]` inputs).

    Query `i` may look at keys `j <= i` only; the others get a score of `-inf` before the softmax, hence a
    weight of 0. The `1 / sqrt(d)` keeps the scores' variance near 1 so the softmax does not saturate.
    """
    T, S = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    # With a cache the T queries are the last T of S positions: query i sits at position S - T + i.
    future = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(S - T + 1)
    weights = stable_softmax(scores.masked_fill(future, float("-inf")))
    out = weights @ v
    return (out, weights) if return_weights else out


class KVCache:
    """Pre-allocated keys and values of every layer for `batch_size` sequences of up to `max_len` tokens.

    The buffers are allocated once ("static" cache): decoding one token writes one slice per layer and reads a
    view, with no `torch.cat` re-allocating a growing tensor at every step.
    """

    def __init__(
        self,
        config: ModelConfig,
        batch_size: int,
        max_len: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.max_len = max_len or config.context_length
        shape = (config.n_layers, batch_size, config.n_kv_heads, self.max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0  # number of positions already stored

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's `k`, `v` (`[B, n_kv_heads, T, d]`) and return all keys and values so far."""
        end = self.pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KVCache is full: {end} positions requested, {self.max_len} allocated")
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def reset(self) -> None:
        self.pos = 0


class CausalSelfAttention(nn.Module):
    """Multi-head attention with grouped-query heads, RoPE, one fused QKV projection and PyTorch's fused kernel.

    `n_heads` query heads share `n_kv_heads` key/value heads (Ainslie et al. 2023): the KV cache shrinks by
    `n_heads / n_kv_heads` at almost no quality cost. The QKV weight stacks `[W_q; W_k; W_v]` row-wise, so the
    HF export only has to split it.
    """

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.dropout = config.dropout
        self.qk_norm = config.qk_norm
        self.qkv = nn.Linear(config.d_model, (config.n_heads + 2 * config.n_kv_heads) * config.head_dim, bias=False)
        self.proj = nn.Linear(config.n_heads * config.head_dim, config.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        H, K = self.n_heads, self.n_kv_heads
        qkv = self.qkv(x).view(B, T, H + 2 * K, self.head_dim).transpose(1, 2)  # [B, H + 2K, T, d]
        qk = qkv[:, : H + K]
        if self.qk_norm:  # bounded scores: no head's softmax can saturate as the weights grow
            qk = F.rms_norm(qk, (self.head_dim,))
        qk = apply_rope(qk, cos.to(qkv.dtype), sin.to(qkv.dtype))  # q and k rotated in one go
        q, k = qk.split((H, K), dim=1)
        v = qkv[:, H + K :]
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)
        # Prefill is plainly causal; a single decoded token sees the whole cache; a chunk after a prefix needs a mask.
        causal = attn_mask is None and k.shape[2] == T and T > 1
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal,
            enable_gqa=K != H,
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, H * self.head_dim))
