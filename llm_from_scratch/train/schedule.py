"""Learning-rate schedules: linear warmup to the peak, then a half cosine down to a floor (10 % of the peak), or
warmup-stable-decay (the peak held, then a linear decay to the floor over the last part of the run)."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd")


def lr_at(
    step: int,
    peak_lr: float,
    total_steps: int,
    warmup_frac: float = 0.02,
    min_ratio: float = 0.1,
    schedule: str = "cosine",
    decay_frac: float = 0.2,
) -> float:
    """Learning rate for 0-based `step` of a run of `total_steps` optimiser steps.

    Warmup: `peak * (step + 1) / warmup` so the very first step already moves (a zero learning rate would waste
    it) and step `warmup - 1` is at the peak. Decay: cosine from the peak at step `warmup` to
    `min_ratio * peak` at the last step `total_steps - 1`; later steps stay at the floor.
    `schedule="wsd"` (warmup-stable-decay, Hu et al. 2024; Hagele et al. 2024) holds the peak after warmup and
    decays linearly to the floor over the last `decay_frac` of the run.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    warmup = warmup_steps(total_steps, warmup_frac)
    min_lr = min_ratio * peak_lr
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    if schedule == "wsd":
        return _wsd(step, peak_lr, min_lr, total_steps, warmup, decay_frac)
    decay_steps = max(1, total_steps - 1 - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1 + math.cos(math.pi * progress))


def warmup_steps(total_steps: int, warmup_frac: float) -> int:
    """Number of warmup steps: a fraction of the run, at least one."""
    if not 0 <= warmup_frac < 1:
        raise ValueError(f"warmup_frac must lie in [0, 1), got {warmup_frac}")
    return max(1, round(warmup_frac * total_steps))


def _wsd(step: int, peak_lr: float, min_lr: float, total_steps: int, warmup: int, decay_frac: float) -> float:
    if not 0 < decay_frac <= 1:
        raise ValueError(f"decay_frac must lie in (0, 1], got {decay_frac}")
    decay = max(1, min(total_steps - warmup, round(decay_frac * total_steps)))
    start = total_steps - decay  # the first step below the peak
    if step < start:
        return peak_lr
    progress = min(1.0, (step - start + 1) / decay)  # the last step lands on the floor
    return peak_lr + (min_lr - peak_lr) * progress
