"""What the trainer reports besides the loss: perplexity, bits per byte, throughput and MFU."""

from __future__ import annotations

import functools
import math
import time

import torch


def perplexity(loss_nats: float) -> float:
    """`exp` of the mean cross-entropy: the effective number of equally likely next tokens."""
    return math.exp(loss_nats)


def bits_per_byte(loss_nats: float, bytes_per_token: float) -> float:
    """Cross-entropy per byte of text in bits: comparable across tokenizers (a token of 4 bytes that costs 4 bits
    is as good as 4 one-byte tokens costing 1 bit each)."""
    return loss_nats / math.log(2) / bytes_per_token


@functools.lru_cache(maxsize=8)
def measured_peak_flops(device: str, dtype: torch.dtype | None = None, n: int = 1024, reps: int = 8) -> float:
    """Best dense-matmul throughput (FLOP/s) this device reaches at `dtype`: the denominator of our MFU.

    Datasheet peaks exist for GPUs but not for a reader's laptop CPU; measuring one large matmul gives a peak for
    every machine, so MFU reads as "fraction of what this machine's matmul kernel can do".
    """
    dtype = dtype or torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
