"""Fully sharded data parallelism with FSDP2 (`torch.distributed.fsdp.fully_shard`: per-parameter sharding on
DTensor, see the PyTorch documentation and TorchTitan, Liang et al. 2024; FSDP itself is Zhao et al. 2023) on the
book's model, and checkpoints that a single process can load.

`fully_shard(block)` turns each block's parameters into DTensors sharded along dim 0 over the ranks; before the
block runs forward (and again backward) FSDP all-gathers them, afterwards it frees the full copies, and the
gradients are reduce-scattered so each rank keeps the gradient of its own shard only; the optimiser then updates
the local shards: ZeRO stage 3.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


def apply_fsdp(model: nn.Module, mesh=None, reshard_after_forward: bool | None = None) -> nn.Module:
    """Shard each block as its own unit (one all-gather per block, so only one block is ever unsharded), then the
    root (embeddings, final norm, head). The model's class and forward code are unchanged.

    `reshard_after_forward=None` (FSDP2's default) frees every block's gathered weights after its forward pass
    but keeps the root's, which the backward pass needs first: it saves one all-gather of the root per step."""
    from torch.distributed.fsdp import fully_shard

    for block in model.layers:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def local_bytes(tensors) -> int:
    """Bytes this rank actually stores for `tensors` (a DTensor counts its local shard only)."""
    total = 0
    for t in tensors:
        if t is None:
            continue
        local = t.to_local() if hasattr(t, "to_local") else t
        total += local.numel() * local.element_size()
    return total


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """All-gather the sharded parameters into ordinary full CPU tensors on rank 0 (an empty dict elsewhere)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def save_full_checkpoint(model: nn.Module, directory: str | os.PathLike) -> Path | None:
    """Write the unsharded weights of an FSDP model in the single-process format (`model.safetensors` +
    `config.json`, loadable with `llm_from_scratch.model.checkpoint.load_model`). Every rank must call it (the
    gather is a collective); rank 0 writes. Returns the directory on rank 0, `None` elsewhere."""
    from llm_from_scratch.model import Transformer
    from llm_from_scratch.model.checkpoint import save_model

    state = full_state_dict(model)
    path = None
    if dist.get_rank() == 0:
        plain = Transformer(model.config)
        plain.load_state_dict(state, strict=True)
        path = save_model(directory, plain, model.config)
    dist.barrier()
    return path


def load_full_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load full weights held by rank 0 into an FSDP model: rank 0 broadcasts, each rank keeps its shard."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, state, options=options)
