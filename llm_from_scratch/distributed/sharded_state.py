"""Full tensors from sharded ones and back, and the global gradient norm, for every parallel strategy.

The trainer keeps one checkpoint format whatever the strategy: full weights and full AdamW moments, exactly what a
single process writes. Three layouts of a tensor meet here:

- replicated: a plain tensor every rank holds whole (DDP, the embeddings and norms under tensor parallelism);
- a DTensor (FSDP2's `Shard(0)` parameters, DTensor TP's `Shard(0)`/`Shard(1)` matrices): it knows its mesh and
  placements, so `full_tensor()` gathers it and `distribute_tensor` cuts it again;
- a tensor-parallel shard: the from-scratch layers hold plain tensors that are rows or columns of the full matrix,
  chosen by `llm_from_scratch.distributed.tensor_parallel.shard_index` (DTensor TP permuted its fused weights
  so its local blocks are the same rows: both use that index).

Every function that gathers is a collective: all ranks call it, with the tensors in the same order.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from llm_from_scratch.distributed.launch import DistEnv

TENSOR_PARALLEL = ("tp", "tp-dtensor")


def is_dtensor(t) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def named_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """`(name, parameter)` with the names of the unwrapped model (DDP's `module.` prefix dropped); a tied
    weight appears once, under its first name."""
    return [(name.removeprefix("module."), p) for name, p in model.named_parameters()]


def tp_index(name: str, strategy: str, config, env: DistEnv, rank: int | None = None):
    """`(dim, rows-or-columns)` of the full tensor that `rank` holds of parameter `name` under tensor
    parallelism, `None` when the tensor is not a tensor-parallel shard."""
    if strategy not in TENSOR_PARALLEL or env.world_size == 1:
        return None
    from llm_from_scratch.distributed.tensor_parallel import shard_index

    return shard_index(name, config, env.rank if rank is None else rank, env.world_size)


def full_tensor(t: torch.Tensor, name: str, strategy: str, config, env: DistEnv) -> torch.Tensor:
    """The unsharded value of `t` (parameter `name`, or a moment shaped like it), on every rank."""
    t = t.detach()
    where = tp_index(name, strategy, config, env)
    if where is not None:
        local = (t.to_local() if is_dtensor(t) else t).contiguous()
        parts = [torch.empty_like(local) for _ in range(env.world_size)]
        dist.all_gather(parts, local)
        dim = where[0]
        shape = list(local.shape)
        shape[dim] *= env.world_size
        full = local.new_empty(shape)
        for r, part in enumerate(parts):
            full.index_copy_(dim, tp_index(name, strategy, config, env, r)[1].to(full.device), part)
        return full
    if is_dtensor(t):
        return t.full_tensor()
    return t


def local_tensor(full: torch.Tensor, like: torch.Tensor, name: str, strategy: str, config, env: DistEnv):
    """This rank's piece of `full`, laid out like `like` (the parameter it belongs to). Every rank holds
    `full`, so nothing is communicated."""
    full = full.to(like.device)
    where = tp_index(name, strategy, config, env)
    if where is not None:
        local = full.index_select(where[0], where[1].to(full.device)).contiguous()
        if is_dtensor(like):
            from torch.distributed.tensor import DTensor

            return DTensor.from_local(local, like.device_mesh, like.placements, shape=like.shape, stride=like.stride())
        return local
    if is_dtensor(like):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)
    return full.clone()


def is_sharded(t: torch.Tensor, name: str, strategy: str, config, env: DistEnv) -> bool:
    """Whether the ranks hold different parts of `t` (their squared norms add up) rather than copies."""
    if is_dtensor(t):
        return any(p.is_shard() for p in t.placements)
    return tp_index(name, strategy, config, env) is not None


def global_grad_norm(named: list[tuple[str, nn.Parameter]], strategy: str, config, env: DistEnv) -> torch.Tensor:
    """L2 norm of the full gradient, the number `clip_grad_norm_` computes in one process.

    `||g||^2` is a sum over elements: the squares of sharded gradients are summed over the ranks (one
    all-reduce), those of replicated ones counted once. Accumulated in float64 so the order of the sums does not
    show."""
    sums = torch.zeros(2, dtype=torch.float64)  # [sharded, replicated]
    for name, p in named:
        if p.grad is None:
            continue
        g = p.grad.to_local() if is_dtensor(p.grad) else p.grad
        sq = g.detach().double().pow(2).sum().cpu()
        sums[0 if is_sharded(p.grad, name, strategy, config, env) else 1] += sq
    if env.world_size > 1:
        sharded = sums[:1].to(env.device)
        dist.all_reduce(sharded)
        sums[0] = sharded.cpu()[0]
    return sums.sum().sqrt()


def clip_grad_norm(
    named: list[tuple[str, nn.Parameter]], max_norm: float, strategy: str, config, env: DistEnv
) -> float:
    """Scale the gradients so their global norm is at most `max_norm` (`math.inf`: no clipping), the rule of
    `torch.nn.utils.clip_grad_norm_`; return the norm before clipping."""
    norm = global_grad_norm(named, strategy, config, env).item()
    coef = min(1.0, max_norm / (norm + 1e-6)) if math.isfinite(max_norm) else 1.0
    if coef < 1.0:
        for _, p in named:
            if p.grad is not None:
                p.grad.mul_(coef)
    return norm


def gather_full_state(
    named: list[tuple[str, nn.Parameter]], optimizer: torch.optim.Optimizer | None, strategy: str, config, env
) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Full weights `{name: tensor}` and full optimiser state `{name: {key: value}}` on CPU (collective; the
    values are meaningful on every rank, the trainer uses rank 0's)."""
    weights = {name: full_tensor(p, name, strategy, config, env).cpu() for name, p in named}
    moments: dict[str, dict] = {}
    if optimizer is not None:
        for name, p in named:
            state = optimizer.state.get(p, {})
            moments[name] = {
                key: full_tensor(v, name, strategy, config, env).cpu() if torch.is_tensor(v) and v.dim() else v
                for key, v in sorted(state.items())
            }
    return weights, moments


def load_full_state(
    plain: nn.Module,
    plain_optimizer: torch.optim.Optimizer | None,
    weights: dict[str, torch.Tensor],
    moments: dict[str, dict],
    hyper: list[dict] | None = None,
) -> None:
    """Fill an unsharded `plain` model (and the optimiser built over it) from `gather_full_state`'s output;
    `hyper` copies the sharded optimiser's per-group hyper-parameters (the current learning rate)."""
    with torch.no_grad():
        for name, p in plain.named_parameters():
            p.copy_(weights[name])
    if plain_optimizer is None:
        return
    for group, values in zip(plain_optimizer.param_groups, hyper or [], strict=False):
        group.update({k: v for k, v in values.items() if k != "params"})
    for name, p in plain.named_parameters():
        if moments.get(name):
            plain_optimizer.state[p] = {k: v.to(p.device) if torch.is_tensor(v) and v.dim() else v
                                        for k, v in moments[name].items()}  # fmt: skip


def shard_optimizer_state(
    optimizer: torch.optim.Optimizer,
    named: list[tuple[str, nn.Parameter]],
    full_state: dict[str, dict],
    strategy: str,
    config,
    env: DistEnv,
) -> None:
    """Give each parameter of a wrapped model its piece of the full optimiser state `{name: {key: value}}` (a
    moment is cut like its parameter; scalars such as `step` are copied)."""
    for name, p in named:
        state = full_state.get(name)
        if not state:
            continue
        optimizer.state[p] = {
            k: local_tensor(v, p, name, strategy, config, env) if torch.is_tensor(v) and v.dim() else _copy(v)
            for k, v in sorted(state.items())
        }


def _copy(v):
    return v.clone() if torch.is_tensor(v) else v
