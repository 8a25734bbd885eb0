"""Learning-rate schedule: linear warmup to the peak, then a half cosine down to a floor (10 % of the peak)."""

from __future__ import annotations

import math


def lr_at(step: int, peak_lr: float, total_steps: int, warmup_frac: float = 0.02, min_ratio: float = 0.1) -> float:
    """Learning rate for 0-based ``step`` of a run of ``total_steps`` optimiser steps.

    Warmup: ``peak * (step + 1) / warmup`` so the very first step already moves (a zero learning rate would waste
    it) and step ``warmup - 1`` is at the peak. Decay: cosine from the peak at step ``warmup`` to
    ``min_ratio * peak`` at the last step ``total_steps - 1``; later steps stay at the floor.
    """
    warmup = warmup_steps(total_steps, warmup_frac)
    min_lr = min_ratio * peak_lr
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    decay_steps = max(1, total_steps - 1 - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1 + math.cos(math.pi * progress))


def warmup_steps(total_steps: int, warmup_frac: float) -> int:
    """Number of warmup steps: a fraction of the run, at least one."""
    if not 0 <= warmup_frac < 1:
        raise ValueError(f"warmup_frac must lie in [0, 1), got {warmup_frac}")
    return max(1, round(warmup_frac * total_steps))
