"""Choosing the peak learning rate: an LR range test (Smith 2017) and a short sweep of full schedules."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from llm_from_scratch.train.data import TokenData, train_batch
from llm_from_scratch.train.optim import AdamW, param_groups
from llm_from_scratch.train.trainer import TrainConfig, train
from llm_from_scratch.utils import seed_everything


def lr_range_test(
    model_config,
    data: TokenData,
    min_lr: float = 1e-5,
    max_lr: float = 1e-1,
    steps: int = 60,
    batch_size: int = 8,
    block_size: int = 128,
    seed: int = 0,
    diverge_factor: float = 4.0,
) -> list[tuple[float, float]]:
    """Train once while the learning rate grows geometrically from `min_lr` to `max_lr`; return
    `(lr, smoothed loss)` pairs, stopping early once the loss exceeds `diverge_factor` times its minimum.

    The loss falls faster as the rate grows, flattens, then blows up; the usable peak sits somewhat below the
    point where the curve turns up.
    """
    from llm_from_scratch.model import Transformer

    seed_everything(seed)
    model = Transformer(model_config)
    opt = AdamW(param_groups(model, 0.1), lr=min_lr, betas=(0.9, 0.95))
    out, smooth, best = [], None, math.inf
    for step, lr in enumerate(np.geomspace(min_lr, max_lr, steps)):
        for g in opt.param_groups:
            g["lr"] = float(lr)
        x, y = train_batch(data, batch_size, block_size, seed, step, 0, 1, "cpu")
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if smooth is None else 0.7 * smooth + 0.3 * loss.item()  # EMA: batches are noisy
        out.append((float(lr), smooth))
        best = min(best, smooth)
        if smooth > diverge_factor * best or not math.isfinite(smooth):
            break
    return out


def lr_sweep(model_config, data: TokenData, peaks, config: TrainConfig, device: str | None = None) -> dict:
    """Final validation loss of one full warmup + cosine run per peak learning rate (same data, same seed)."""
    results = {}
    for peak in peaks:
        run = train(
            model_config,
            data,
            dataclasses.replace(config, peak_lr=peak),
            None,
            device=device,
            progress=False,
            sample_fn=lambda model: "",
        )
        results[peak] = run.last("val_loss")
    return results
