"""Batches for pretraining: random windows of a token stream, chosen by a generator seeded from (seed, step).

Because the windows of step `s` depend only on `(seed, s, micro-batch)`, the data-loader "position" is the step
number: a resumed run draws exactly the batches the uninterrupted run would have drawn, with no iterator to save.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TokenData:
    """Train and validation token streams plus what evaluation needs to convert nats per token into bits per byte.

    `bytes_per_token` is the number of UTF-8 bytes of validation text per validation token; `fingerprint`
    identifies the tokenizer (a checkpoint refuses to resume with another one).
    """

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    bytes_per_token: float
    fingerprint: str
    decode: object = None  # ids -> str, for samples during training
    encode: object = None  # str -> ids
    shards: object = None  # a tokenizer ShardSet: training batches then come from its loader


def train_batch(
    data: TokenData,
    batch_size: int,
    block_size: int,
    seed: int,
    step: int,
    micro: int,
    grad_accum: int,
    device: str,
    rank: int = 0,
    world_size: int = 1,
    order: str = "random",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Micro-batch `micro` of optimiser step `step`: from the shard loader when there are shards (its
    windows are a function of (seed, index), like ours), else from the in-memory stream. `order` is `"random"`
    (fresh windows every step) or `"epochs"` (a permutation of non-overlapping windows per epoch: every token once
    before any twice); see `tokenizer.loader`.

    Data parallelism: the global micro-batch has `batch_size * world_size` windows, drawn as one process with
    that batch size would draw them, and rank `rank` takes the `rank`-th block of `batch_size`; so N ranks
    together see exactly what one process with N times the batch sees, and no two ranks read the same window."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    index = step * grad_accum + micro  # the loader's position: one per micro-batch
    if data.shards is not None:
        from llm_from_scratch.tokenizer.loader import get_batch as shard_batch

        return shard_batch(data.shards, "train", batch_size, block_size, seed, index, rank, world_size, device, order)
    if order == "epochs":  # the stream as one shard
        from llm_from_scratch.tokenizer.loader import epoch_window_starts

        _, starts = epoch_window_starts([len(data.train)], batch_size * world_size, block_size, seed, index)
        x, y = _windows(data.train, starts, block_size)
    elif world_size == 1:
        return stream_batch(data.train, batch_size, block_size, seed, step, micro, device)
    else:
        x, y = stream_batch(data.train, batch_size * world_size, block_size, seed, step, micro, "cpu")
    mine = slice(rank * batch_size, (rank + 1) * batch_size)
    return x[mine].to(device), y[mine].to(device)


def shards_token_data(shards, tok) -> TokenData:
    """`TokenData` for a tokenizer `ShardSet` and the tokenizer that wrote it (checked: a mismatch raises)."""
    shards.check_tokenizer(tok)
    return TokenData(
        train=None,
        val=shards.stream("val"),
        vocab_size=shards.vocab_size,
        bytes_per_token=shards.bytes_per_token("val"),
        fingerprint=shards.fingerprint,
        decode=tok.decode,
        encode=tok.encode,
        shards=shards,
    )


def batch_generator(seed: int, step: int, micro: int = 0) -> torch.Generator:
    """A CPU generator whose state is a pure function of (seed, step, micro-batch)."""
    digest = hashlib.sha256(f"{seed}/{step}/{micro}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def stream_batch(
    tokens: np.ndarray, batch_size: int, block_size: int, seed: int, step: int, micro: int = 0, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` windows of `block_size + 1` tokens at random offsets: inputs and next-token targets."""
    if len(tokens) <= block_size + 1:
        raise ValueError(f"the token stream has {len(tokens)} tokens, fewer than block_size + 2 = {block_size + 2}")
    g = batch_generator(seed, step, micro)
    starts = torch.randint(0, len(tokens) - block_size - 1, (batch_size,), generator=g).numpy()
    x, y = _windows(tokens, starts, block_size)
    return x.to(device), y.to(device)


def _windows(tokens: np.ndarray, starts, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of the windows of `block_size + 1` tokens at `starts`."""
    xy = torch.from_numpy(np.stack([tokens[s : s + block_size + 1] for s in starts]).astype(np.int64))
    return xy[:, :-1], xy[:, 1:]


def eval_windows(tokens: np.ndarray, batch_size: int, block_size: int, n_batches: int) -> list[torch.Tensor]:
    """Fixed, evenly spaced, non-overlapping-where-possible windows of the validation stream.

    The same windows every evaluation, so validation curves are comparable point to point and between runs.
    """
    n = batch_size * n_batches
    last = len(tokens) - block_size - 1
    if last < 0:
        raise ValueError(f"the validation stream has {len(tokens)} tokens, fewer than block_size + 1")
    starts = np.linspace(0, last, num=n).astype(np.int64)
    windows = torch.from_numpy(np.stack([tokens[s : s + block_size + 1] for s in starts]).astype(np.int64))
    return list(windows.split(batch_size))


def char_data(text: str, val_frac: float = 0.1) -> TokenData:
    """Character-level data (nanoGPT's Shakespeare recipe): vocabulary = sorted set of characters, first 90 %
    train, last 10 % validation."""
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    split = int(len(ids) * (1 - val_frac))
    val_text = text[split:]
    fingerprint = hashlib.sha256("".join(chars).encode()).hexdigest()[:12]
    return TokenData(
        train=ids[:split],
        val=ids[split:],
        vocab_size=len(chars),
        bytes_per_token=len(val_text.encode()) / len(val_text),
        fingerprint=f"char-{fingerprint}",
        decode=lambda ids: "".join(chars[i] for i in ids),
        encode=lambda s: [stoi[c] for c in s if c in stoi],
    )
