"""Training windows from token shards, deterministic from (seed, step) and disjoint across ranks.

Two orders: `"random"` draws each step's windows afresh from every valid start, so across steps a window can repeat
while others are never drawn (after E epochs' worth of tokens a fraction of about `exp(-E)` of the corpus is still
unseen: 25 % at 1.4 epochs); `"epochs"` walks a seeded permutation of non-overlapping windows, one epoch after another,
so every token is seen once per epoch before any is seen twice.
"""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=4)
def _epoch_plan(lengths: tuple[int, ...], context_length: int, seed: int, epoch: int):
    """Epoch `epoch`'s order: a shift of the window grid (so epochs cut the text at different places), the windows
    per shard, their running total, and a permutation of all of them."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    shift = int(rng.integers(0, context_length))
    # with any shift < context_length, window k of a shard ends at shift + (k + 1) * context + 1 <= length
    per_shard = np.array([max(0, n // context_length - 1) for n in lengths], dtype=np.int64)
    return shift, per_shard, np.cumsum(per_shard), rng.permutation(int(per_shard.sum()))


def epoch_window_starts(
    lengths: list[int], n: int, context_length: int, seed: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Windows `step * n` to `step * n + n - 1` of a sequence of epochs, as (shard index, offset) pairs.

    An epoch is every non-overlapping window of `context_length + 1` tokens of every shard (on a grid shifted by a
    random offset per epoch), in a permutation seeded by `(seed, epoch)`: a pure function of `(seed, step)` like
    `window_starts`, so resuming and data-parallel ranks work the same, but no window repeats within an epoch."""
    lengths = tuple(int(n_tokens) for n_tokens in lengths)
    per_epoch = int(_epoch_plan(lengths, context_length, seed, 0)[1].sum())
    if n > per_epoch:
        raise ValueError(
            f"cannot draw {n} distinct windows of {context_length + 1} tokens from shards with only {per_epoch} "
            "non-overlapping windows; use a smaller batch or context, or more data"
        )
    index = step * n + np.arange(n, dtype=np.int64)
    shard, offset = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for epoch in np.unique(index // per_epoch):  # one epoch, or two when the batch straddles a boundary
        shift, per_shard, ends, order = _epoch_plan(lengths, context_length, seed, int(epoch))
        here = index // per_epoch == epoch
        window = order[index[here] % per_epoch]
        shard[here] = np.searchsorted(ends, window, side="right")
        offset[here] = shift + (window - (ends[shard[here]] - per_shard[shard[here]])) * context_length
    return shard, offset


SAMPLERS = {"random": window_starts, "epochs": epoch_window_starts}


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
    order: str = "random",
):
    """Inputs `x` and targets `y` (`x` shifted by one token), LongTensors of shape `[batch_size, context]`.

    Each step draws `batch_size * world_size` distinct windows from one generator seeded by `(seed, step)`;
    rank `r` takes the `r`-th slice, so data-parallel ranks never read the same window in the same step and
    together see exactly the batch a single process with `world_size` times the batch size would see.
    `order` is `"random"` (`window_starts`) or `"epochs"` (`epoch_window_starts`).
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
    if order not in SAMPLERS:
        raise ValueError(f"order must be one of {sorted(SAMPLERS)}, got {order!r}")
    maps = shards.tokens(split)
    shard, offset = SAMPLERS[order]([len(m) for m in maps], batch_size * world_size, context_length, seed, step)
    mine = slice(rank * batch_size, (rank + 1) * batch_size)
    rows = [maps[s][o : o + context_length + 1] for s, o in zip(shard[mine], offset[mine], strict=False)]
    batch = torch.from_numpy(np.stack(rows).astype(np.int64))
    x, y = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
    if device.startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
