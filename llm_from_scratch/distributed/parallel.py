"""What a training loop calls to run under ``torchrun``: wrap the model for a strategy and fetch this rank's batch.

The trainer's side of ``llm-from-scratch pretrain --parallel {ddp,fsdp,tp}``::

    env = setup_distributed()                      # reads torchrun's variables; nccl on GPUs, gloo on CPU
    model = wrap_model(Transformer(config).to(env.device), parallel, env)
    x, y = rank_batch(shards, batch_size, context, seed, step, env, parallel)
    ...                                            # forward, backward, optimiser step as in one process
    if env.is_main: log / save (FSDP: save_full_checkpoint(model, dir) on every rank)
    cleanup_distributed()
"""

from __future__ import annotations

from torch import nn

from llm_from_scratch.distributed.launch import DistEnv

STRATEGIES = ("none", "ddp", "ddp-scratch", "fsdp", "tp", "tp-dtensor")


def is_data_parallel(strategy: str) -> bool:
    """Whether ranks read different data (DDP, FSDP) or the same batch (tensor parallel: ranks split the matrices,
    not the batch)."""
    return strategy in ("ddp", "ddp-scratch", "fsdp")


def wrap_model(model: nn.Module, strategy: str, env: DistEnv) -> nn.Module:
    """Return ``model`` prepared for ``strategy``; in a world of one every strategy is the plain model."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown parallel strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if env.world_size == 1 or strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [env.local_rank] if env.device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)
    if strategy == "ddp-scratch":
        from llm_from_scratch.distributed.ddp import DataParallel

        return DataParallel(model)
    if strategy == "fsdp":
        from llm_from_scratch.distributed.fsdp import apply_fsdp

        return apply_fsdp(model)
    if strategy == "tp":
        from llm_from_scratch.distributed.tensor_parallel import apply_tensor_parallel

        return apply_tensor_parallel(model)
    from torch.distributed.device_mesh import init_device_mesh

    from llm_from_scratch.distributed.tensor_parallel import parallelize_with_dtensor

    return parallelize_with_dtensor(model, init_device_mesh(env.device.split(":")[0], (env.world_size,)))


def rank_batch(shards, batch_size: int, context_length: int, seed: int, step: int, env: DistEnv, parallel: str):
    """This rank's ``(x, y)`` for ``step``: a disjoint slice of the global batch under data parallelism (so the
    ranks together see what one process with ``world_size`` times the batch would see), the whole batch under
    tensor parallelism."""
    from llm_from_scratch.tokenizer.loader import get_batch

    if is_data_parallel(parallel):
        return get_batch(shards, "train", batch_size, context_length, seed, step, env.rank, env.world_size, env.device)
    return get_batch(shards, "train", batch_size, context_length, seed, step, 0, 1, env.device)
