"""Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): split each block's matrices across the ranks of a node.

A column-parallel linear keeps a slice of the output features (rows of `W`); a row-parallel linear keeps a slice of
the input features (columns of `W`) and produces a partial sum. Chained column -> row, the pair needs one
all-reduce in the forward pass (operator `g`, after the row-parallel layer) and one in the backward pass
(operator `f`, the gradient flowing into the column-parallel layer's input). Attention splits by heads (each rank
computes whole heads, so the softmax needs no communication); the SwiGLU MLP splits its hidden units.

The model fuses `[W_q; W_k; W_v]` and `[W_gate; W_up]` into single matrices, so "a contiguous slice of rows" is
the wrong shard: rank `r` needs its query heads, *its* key/value heads, and the matching halves of gate and up.
`qkv_shard_rows` and `gate_up_shard_rows` name those rows; the from-scratch layers take them directly,
and `parallelize_with_dtensor` permutes the fused weights so each rank's rows become one contiguous block, the
layout PyTorch's `ColwiseParallel` expects.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.model.config import ModelConfig


class CopyToTensorParallel(torch.autograd.Function):
    """Megatron's `f`: identity forward; all-reduce of the input gradient backward (each rank's column slice
    contributes a partial gradient to the shared input)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class ReduceFromTensorParallel(torch.autograd.Function):
    """Megatron's `g`: all-reduce forward (sum the row-parallel partial outputs); identity backward (every
    rank needs the full output gradient, and it already has it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        x = x.contiguous().clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class ColumnParallelLinear(nn.Module):
    """`y_r = x W_r^T` with `W_r` the rows `rows` of the full weight: this rank's output features."""

    def __init__(self, full: nn.Linear, rows: torch.Tensor, group=None) -> None:
        super().__init__()
        if full.bias is not None:
            raise ValueError("ColumnParallelLinear: the book's model has no biases; this layer does not shard one")
        self.group = group
        self.weight = nn.Parameter(full.weight.detach()[rows].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(CopyToTensorParallel.apply(x, self.group), self.weight)


class RowParallelLinear(nn.Module):
    """`y = sum_r x_r W_r^T` with `W_r` the columns `cols` of the full weight and `x_r` this rank's slice
    of the input features (the output of a column-parallel layer): one all-reduce sums the partial products."""

    def __init__(self, full: nn.Linear, cols: torch.Tensor, group=None) -> None:
        super().__init__()
        if full.bias is not None:
            raise ValueError("RowParallelLinear: the book's model has no biases; this layer does not shard one")
        self.group = group
        self.weight = nn.Parameter(full.weight.detach()[:, cols].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ReduceFromTensorParallel.apply(F.linear(x, self.weight), self.group)


def check_tp_shapes(config: ModelConfig, tp: int) -> None:
    """Raise a `ValueError` naming the field if the heads or hidden units cannot be split evenly over `tp`."""
    for name, value in (
        ("n_heads", config.n_heads),
        ("n_kv_heads", config.n_kv_heads),
        ("ffn_hidden", config.ffn_hidden),
    ):
        if value % tp:
            raise ValueError(
                f"tensor parallelism over {tp} ranks needs ModelConfig.{name}={value} divisible by {tp}; "
                f"choose a tensor-parallel size among the divisors of {value}"
            )


def _heads(first: int, count: int, head_dim: int) -> torch.Tensor:
    return torch.arange(first * head_dim, (first + count) * head_dim)


def qkv_shard_rows(config: ModelConfig, rank: int, tp: int) -> torch.Tensor:
    """Rows of the fused `[W_q; W_k; W_v]` that rank `rank` keeps: query heads `rank * H/tp ..` and the
    key/value heads they attend with (under grouped-query attention query head `h` uses kv head `h // (H/K)`,
    so consecutive query heads and consecutive kv heads stay together)."""
    check_tp_shapes(config, tp)
    H, K, d = config.n_heads, config.n_kv_heads, config.head_dim
    h, k = H // tp, K // tp
    q = _heads(rank * h, h, d)
    kk = _heads(H + rank * k, k, d)
    v = _heads(H + K + rank * k, k, d)
    return torch.cat([q, kk, v])


def proj_shard_cols(config: ModelConfig, rank: int, tp: int) -> torch.Tensor:
    """Columns of the attention output projection that multiply this rank's heads."""
    h = config.n_heads // tp
    return _heads(rank * h, h, config.head_dim)


def gate_up_shard_rows(hidden: int, rank: int, tp: int) -> torch.Tensor:
    """Rows of the fused `[W_gate; W_up]` for this rank's slice of hidden units (the same units in both halves,
    because `silu(gate_i) * up_i` pairs them element by element)."""
    n = hidden // tp
    units = torch.arange(rank * n, (rank + 1) * n)
    return torch.cat([units, hidden + units])


def down_shard_cols(hidden: int, rank: int, tp: int) -> torch.Tensor:
    n = hidden // tp
    return torch.arange(rank * n, (rank + 1) * n)


def apply_tensor_parallel(model: nn.Module, rank: int | None = None, tp: int | None = None, group=None) -> nn.Module:
    """Shard every block of the book's `Transformer` in place, from scratch: `qkv` and `gate_up` become
    column-parallel, `proj` and `down` row-parallel, and each attention module computes `H/tp` query heads
    and `K/tp` key/value heads. Embeddings, norms and the head stay replicated. The unchanged `forward` code of
    the model runs on the local shards."""
    rank = dist.get_rank(group) if rank is None else rank
    tp = dist.get_world_size(group) if tp is None else tp
    config = model.config
    check_tp_shapes(config, tp)
    for block in model.layers:
        attn, ffn = block.attn, block.ffn
        attn.qkv = ColumnParallelLinear(attn.qkv, qkv_shard_rows(config, rank, tp), group)
        attn.proj = RowParallelLinear(attn.proj, proj_shard_cols(config, rank, tp), group)
        attn.n_heads, attn.n_kv_heads = config.n_heads // tp, config.n_kv_heads // tp
        ffn.gate_up = ColumnParallelLinear(ffn.gate_up, gate_up_shard_rows(ffn.hidden, rank, tp), group)
        ffn.down = RowParallelLinear(ffn.down, down_shard_cols(ffn.hidden, rank, tp), group)
        ffn.hidden = ffn.hidden // tp
    return model


def shard_index(name: str, config: ModelConfig, rank: int, tp: int) -> tuple[int, torch.Tensor] | None:
    """For a parameter name of the unsharded model: `(dim, index)` of the slice rank `rank` holds under tensor
    parallelism, or `None` for a replicated parameter. Used to compare shards with the full model."""
    if name.endswith("attn.qkv.weight"):
        return 0, qkv_shard_rows(config, rank, tp)
    if name.endswith("attn.proj.weight"):
        return 1, proj_shard_cols(config, rank, tp)
    if name.endswith("ffn.gate_up.weight"):
        return 0, gate_up_shard_rows(config.ffn_hidden, rank, tp)
    if name.endswith("ffn.down.weight"):
        return 1, down_shard_cols(config.ffn_hidden, rank, tp)
    return None


def parallelize_with_dtensor(model: nn.Module, mesh) -> nn.Module:
    """The same sharding with PyTorch's DTensor API (`parallelize_module`): permute the fused weights so rank
    `r`'s rows form the `r`-th contiguous block, then let `ColwiseParallel` / `RowwiseParallel` shard them."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    config, tp = model.config, mesh.size()
    check_tp_shapes(config, tp)
    qkv_perm = torch.cat([qkv_shard_rows(config, r, tp) for r in range(tp)])
    gate_up_perm = torch.cat([gate_up_shard_rows(config.ffn_hidden, r, tp) for r in range(tp)])
    plan = {"attn.qkv": ColwiseParallel(), "attn.proj": RowwiseParallel(),
            "ffn.gate_up": ColwiseParallel(), "ffn.down": RowwiseParallel()}  # fmt: skip
    for block in model.layers:
        with torch.no_grad():
            block.attn.qkv.weight.copy_(block.attn.qkv.weight[qkv_perm])
            block.ffn.gate_up.weight.copy_(block.ffn.gate_up.weight[gate_up_perm])
        parallelize_module(block, mesh, plan)
        block.attn.n_heads, block.attn.n_kv_heads = config.n_heads // tp, config.n_kv_heads // tp
        block.ffn.hidden = config.ffn_hidden // tp
    return model
