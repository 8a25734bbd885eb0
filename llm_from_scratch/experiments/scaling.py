"""IsoFLOP profiles at the book's scale (Kaplan et al. 2020; Hoffmann et al. 2022, approach 2).

For a fixed training budget of C FLOPs, a model with F FLOPs per token trains on T = C / F tokens. Training several
model sizes at the same C and fitting a parabola of final validation loss against log N gives the size N*(C) that
spends the budget best, and T*(C) = C / F(N*). Doing it at two or three budgets gives the trend to extrapolate.

Which N: here the total parameter count, the tied embedding included. Kaplan et al. counted only the
non-embedding parameters because at their scale the embedding is a rounding error; with an 8192-token vocabulary
and d_model = 256 the tied embedding is 2.1M of a 4-block model's 5.05M parameters, and its other use, the output
head, is a real matmul that costs 6 V d FLOPs per trained token (40 % of that model's). Hoffmann et al. count all
parameters too. The FLOPs themselves are the model's own count (`Transformer.flops_per_token`: every matmul,
attention's included), so C is what the run costs, not the 6 N T approximation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from llm_from_scratch.model import ModelConfig, Transformer
from llm_from_scratch.train.data import TokenData
from llm_from_scratch.train.trainer import TrainConfig, train

# The recipe every point of the sweep trains with: the speedrun chapter's winner (Muon for the hidden matrices,
# AdamW for the embedding/head and vectors, warmup-stable-decay, zero-initialised output projections; no QK-norm,
# which Hugging Face's Llama cannot load), at the book's context. Small batches (4 x 256 tokens) so that even the
# largest model takes a few dozen steps at the smallest budget; 32 evenly spaced validation windows instead of the
# book's 64 (same split), since evaluating costs a sizeable share of budgets this small.
RECIPE = TrainConfig(
    batch_size=4,
    peak_lr=3e-3,
    warmup_frac=0.05,
    optimizer="muon",
    muon_lr=0.02,
    schedule="wsd",
    decay_frac=0.3,
    eval_batches=2,
    eval_batch_size=16,
    log_interval=10,
)
MIN_STEPS = 20


@dataclass(frozen=True)
class Shape:
    """A model size of the sweep: width and depth; an even number of heads of about 64 dimensions, grouped-query
    attention with half as many key/value heads, the SwiGLU hidden size 8/3 d rounded up to a multiple of 64."""

    d_model: int
    n_layers: int

    def config(self, vocab_size: int, context_length: int = 256) -> ModelConfig:
        heads = max(2, self.d_model // 128 * 2)  # an even count, about 64 dimensions each
        ffn = int(math.ceil(8 * self.d_model / 3 / 64) * 64)
        return ModelConfig(
            vocab_size=vocab_size,
            context_length=context_length,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=heads,
            n_kv_heads=max(1, heads // 2),
            ffn_hidden=ffn,
            zero_init_proj=True,
        ).validate()


def describe(config: ModelConfig, block: int = 256) -> dict:
    """Parameter and FLOP counts of a model config: total and non-embedding N, training FLOPs per token, and
    the share of those FLOPs spent in the output head (6 V d per token)."""
    model = Transformer(config)
    flops = model.flops_per_token(block)
    head = 6 * config.vocab_size * config.d_model
    return {
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "params": model.num_parameters(),
        "params_non_embedding": model.num_parameters(non_embedding=True),
        "flops_per_token": flops,
        "head_flop_fraction": head / flops,
    }


def run_point(shape: Shape, budget: float, data: TokenData, recipe: TrainConfig = RECIPE) -> dict:
    """Train `shape` for `budget` training FLOPs (rounded to whole steps) and return its final validation loss
    and bits per byte with the counts of `describe`."""
    block = 256
    config = shape.config(data.vocab_size, block)
    info = describe(config, block)
    tokens_per_step = recipe.batch_size * block
    steps = max(MIN_STEPS, round(budget / (info["flops_per_token"] * tokens_per_step)))
    cfg = dataclasses.replace(recipe, max_steps=steps, eval_interval=steps)
    result = train(config, data, cfg, run_dir=None, progress=False, sample_fn=lambda m: "")
    speeds = [r["tok_per_s"] for r in result.records if "tok_per_s" in r and r["step"] > 1]
    return {
        **info,
        "budget": budget,
        "steps": steps,
        "tokens": steps * tokens_per_step,
        "flops": steps * tokens_per_step * info["flops_per_token"],
        "val_loss": result.last("val_loss"),
        "val_bpb": result.last("val_bpb"),
        "tok_per_s": float(np.median(speeds)) if speeds else None,
        "threads": torch.get_num_threads(),
    }


def fit_profile(rows: list[dict], key: str = "params") -> dict:
    """Least-squares parabola of final validation loss against log10 N over one budget's rows; the vertex is the
    optimum N*. Returns the coefficients (a x^2 + b x + c), N*, the loss there, and whether the vertex falls inside
    the measured sizes (outside, N* is an extrapolation)."""
    x = np.log10([r[key] for r in rows])
    y = np.array([r["val_loss"] for r in rows])
    a, b, c = np.polyfit(x, y, 2)
    if a <= 0:  # no minimum: the best measured size stands in
        best = rows[int(np.argmin(y))]
        return {"coef": [float(a), float(b), float(c)], "n_opt": float(best[key]), "loss_opt": float(y.min()),
                "inside": False, "vertex": False}  # fmt: skip
    xv = -b / (2 * a)
    return {
        "coef": [float(a), float(b), float(c)],
        "n_opt": float(10**xv),
        "loss_opt": float(c - b * b / (4 * a)),
        "inside": bool(x.min() <= xv <= x.max()),
        "vertex": True,
    }


def power_law(budgets: list[float], values: list[float]) -> dict:
    """A straight line in log-log space, value = k C^alpha, through the optima of the budgets."""
    alpha, logk = np.polyfit(np.log10(budgets), np.log10(values), 1)
    return {"alpha": float(alpha), "log10_k": float(logk)}


def predict(law: dict, budget: float) -> float:
    return float(10 ** (law["log10_k"] + law["alpha"] * math.log10(budget)))
