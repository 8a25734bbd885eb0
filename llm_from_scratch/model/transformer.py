"""The full decoder: embeddings, pre-norm blocks, final norm, head; parameter and FLOP accounting."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.model.attention import CausalSelfAttention, KVCache
from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.layers import RMSNorm, SwiGLU
from llm_from_scratch.model.loss import linear_cross_entropy
from llm_from_scratch.model.rope import rope_cache


class Block(nn.Module):
    """One pre-norm block: `x + attn(norm(x))` then `x + ffn(norm(x))`.

    Normalising the input of each sub-layer (not its output, as the 2017 Transformer did) leaves the residual
    stream an identity path from the embeddings to the head, which is what lets deep stacks train without warm-up
    tricks (Xiong et al. 2020).
    """

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ffn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.ffn = SwiGLU(config.d_model, config.ffn_hidden)
        self.dropout = config.dropout

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        a = self.attn(self.attn_norm(x), cos, sin, kv_cache, attn_mask)
        if self.dropout and self.training:
            a = F.dropout(a, self.dropout, training=True)
        x = x + a
        f = self.ffn(self.ffn_norm(x))
        if self.dropout and self.training:
            f = F.dropout(f, self.dropout, training=True)
        return x + f


class Transformer(nn.Module):
    """A Llama-style decoder-only language model.

    `forward(idx, targets)` returns `(logits [B, T, vocab], loss)` where the loss is the mean cross-entropy of
    `logits[b, t]` against `targets[b, t]` (positions with target `-100` are ignored), or `None` without
    targets. The state-dict keys are stable: `tok_emb.weight`, `layers.{i}.attn_norm.weight`,
    `layers.{i}.attn.qkv.weight`, `layers.{i}.attn.proj.weight`, `layers.{i}.ffn_norm.weight`,
    `layers.{i}.ffn.gate_up.weight`, `layers.{i}.ffn.down.weight`, `norm.weight`, `lm_head.weight`.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config.validate()
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # one matrix reads tokens in and writes them out
        self.init_weights()
        self._set_rope()

    def _set_rope(self) -> None:
        c = self.config
        cos, sin = rope_cache(
            c.head_dim, c.context_length, c.rope_theta, c.rope_scaling, c.rope_factor, c.rope_original_context
        )
        device = self.tok_emb.weight.device
        # Not persistent: the tables are a function of the config, so checkpoints stay independent of them.
        self.register_buffer("rope_cos", cos.to(device), persistent=False)
        self.register_buffer("rope_sin", sin.to(device), persistent=False)

    def init_weights(self) -> None:
        """Normal(0, init_std) for every matrix; the two projections that write into the residual stream get
        `init_std / sqrt(2 n_layers)` so that the stream's variance does not grow with depth (GPT-2's scheme),
        or zero with `zero_init_proj` (every block starts as the identity, as in modded-nanogpt);
        RMSNorm gains start at one."""
        std = self.config.init_std
        for name, p in self.named_parameters():
            if p.dim() < 2:
                nn.init.ones_(p)
            elif name.endswith(("attn.proj.weight", "ffn.down.weight")) and self.config.zero_init_proj:
                nn.init.zeros_(p)
            elif name.endswith(("attn.proj.weight", "ffn.down.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.config.n_layers))
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        last_only: bool = False,
        return_logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Logits for every position (only the last with `last_only`) and the loss if `targets` is given.

        With a `kv_cache` the tokens in `idx` continue the sequence stored in the cache (positions
        `kv_cache.pos ..`); the cache then advances by `idx.shape[1]`. `return_logits=False` (with
        `targets`) is the training path: the head and the loss run fused (`llm_from_scratch.model.loss`),
        the logits are never kept, and `None` is returned in their place.
        """
        T = idx.shape[1]
        start = kv_cache.pos if kv_cache is not None else 0
        if start + T > self.rope_cos.shape[0]:
            raise ValueError(
                f"sequence of {start + T} tokens is longer than the model's context_length "
                f"{self.rope_cos.shape[0]}; crop the input or extend the context (ModelConfig.with_context_extension)"
            )
        cos, sin = self.rope_cos[start : start + T], self.rope_sin[start : start + T]
        attn_mask = None
        if kv_cache is not None and start > 0 and T > 1:  # a chunk after a prefix: query i sees keys <= start + i
            attn_mask = torch.ones(T, start + T, dtype=torch.bool, device=idx.device).tril(start)
        x = self.tok_emb(idx)
        if self.config.dropout and self.training:
            x = F.dropout(x, self.config.dropout, training=True)
        for layer in self.layers:
            x = layer(x, cos, sin, kv_cache, attn_mask)
        if kv_cache is not None:
            kv_cache.pos += T
        x = self.norm(x)
        if targets is not None and not return_logits:
            return None, linear_cross_entropy(x.flatten(0, 1), self.lm_head.weight, targets.flatten())
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return logits, loss

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of distinct parameters (a tied embedding counts once). `non_embedding` drops the token
        embedding table, and the head too when it is a separate matrix (Kaplan et al.'s N)."""
        total = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding:
            total -= self.tok_emb.weight.numel()
            if not self.config.tie_embeddings:
                total -= self.lm_head.weight.numel()
        return total

    def flops_per_token(self, seq_len: int | None = None, training: bool = True) -> int:
        """Matmul FLOPs per token: see `flops_per_token`."""
        return flops_per_token(self.config, seq_len, training)

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        w = self.tok_emb.weight
        return KVCache(self.config, batch_size, max_len or self.rope_cos.shape[0], w.device, w.dtype)


def count_parameters(config: ModelConfig) -> int:
    """The parameter count from the config alone (no model built), equal to `Transformer(config).num_parameters()`."""
    c = config
    attn = c.d_model * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim + c.n_heads * c.head_dim * c.d_model
    ffn = 3 * c.d_model * c.ffn_hidden
    per_layer = attn + ffn + 2 * c.d_model
    embed = c.vocab_size * c.d_model * (1 if c.tie_embeddings else 2)
    return embed + c.n_layers * per_layer + c.d_model


def flops_per_token(config: ModelConfig, seq_len: int | None = None, training: bool = True) -> int:
    """Matmul FLOPs to process one token at sequence length `seq_len` (default: the context length).

    Forward: `2 N_matmul` (a multiply and an add per weight of every matrix, the head included, the embedding
    lookup excluded) plus `4 n_layers T d_model` for the scores `QK^T` and the weighted sum `AV` (counted over
    the full `T x T` square, as PaLM's MFU formula does). Training adds the backward pass, twice the forward:
    `6 N_matmul + 12 n_layers T d_model`, the "6N rule" plus attention.
    """
    c = config
    T = seq_len or c.context_length
    attn = c.d_model * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim + c.n_heads * c.head_dim * c.d_model
    n_matmul = c.n_layers * (attn + 3 * c.d_model * c.ffn_hidden) + c.d_model * c.vocab_size
    forward = 2 * n_matmul + 4 * c.n_layers * T * c.n_heads * c.head_dim
    return 3 * forward if training else forward
