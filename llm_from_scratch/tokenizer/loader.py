"""Random training windows from token shards, deterministic from (seed, step) and disjoint across ranks."""

from __future__ import annotations

import numpy as np

from llm_from_scratch.tokenizer.shards import ShardSet


def window_starts(
    lengths: list[int], n: int, context_length: int, seed: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """`n` distinct windows of `context_length + 1` tokens as (shard index, offset) pairs.

    The generator is seeded with `(seed, step)` only, so batch `step` is the same whether training ran straight
    through or resumed from a checkpoint at `step`. Windows never cross a shard boundary, and they are drawn
    without replacement from all valid starting positions of all shards together, so each position is equally likely.
    """
    valid = np.array([max(0, length - context_length) for length in lengths], dtype=np.int64)
    total = int(valid.sum())
    if n > total:
        raise ValueError(
            f"cannot draw {n} distinct windows of {context_length + 1} tokens from shards with only {total} "
            "valid starting positions; use a smaller batch or context, or more data"
        )
    rng = np.random.default_rng([seed, step])
    flat = rng.choice(total, size=n, replace=False)
    ends = np.cumsum(valid)
    shard = np.searchsorted(ends, flat, side="right")
    offset = flat - (ends[shard] - valid[shard])
    return shard, offset


def get_batch(
    shards: ShardSet,
    split: str,
    batch_size: int,
    context_length: int,
    seed: int,
    step: int,
    rank: int = 0,
    world_size: int = 1,
    device: str | None = "cpu",
):
    """Inputs `x` and targets `y` (`x` shifted by one token), LongTensors of shape `[batch_size, context]`.

    Each step draws `batch_size * world_size` distinct windows from one generator seeded by `(seed, step)`;
    rank `r` takes the `r`-th slice, so data-parallel ranks never read the same window in the same step and
    together see exactly the batch a single process with `world_size` times the batch size would see.
    On CUDA the batch is copied through pinned memory with `non_blocking=True` so the copy overlaps compute.
    """
    import torch

    from llm_from_scratch.utils import pick_device

    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    device = pick_device(device)
    if device.startswith("cuda:") and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise RuntimeError(
            f"device {device!r} was requested but this machine has {torch.cuda.device_count()} CUDA device(s); "
            "use cuda:0 .. cuda:N-1 (under torchrun: cuda:LOCAL_RANK)"
        )
    maps = shards.tokens(split)
    shard, offset = window_starts([len(m) for m in maps], batch_size * world_size, context_length, seed, step)
    mine = slice(rank * batch_size, (rank + 1) * batch_size)
    rows = [maps[s][o : o + context_length + 1] for s, o in zip(shard[mine], offset[mine], strict=False)]
    batch = torch.from_numpy(np.stack(rows).astype(np.int64))
    x, y = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
    if device.startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
