"""Does the seed's architecture earn its place? RoPE + SwiGLU + RMSNorm (pre-norm) against a GPT-2-style baseline
(learned absolute positions, LayerNorm, GELU MLP) of the same width, depth and parameter count, trained with the
same optimiser, schedule, data and tokenizer for the same wall-clock time; plus a model-size sweep at fixed compute.

The default recipe is nanoGPT's CPU Shakespeare run (4 layers, 4 heads, 128 dims, context 64, batch 12,
2000 iterations, dropout 0, lr 1e-3 with 100 warmup steps, beta2 0.99), for which nanoGPT reports a validation loss
of 1.88 (character level, first 90 % train / last 10 % validation). `--data PATH` trains on a text file at the
character level (e.g. tinyshakespeare.txt); without it the book's curated shards and BPE tokenizer are used.

    python benchmarks/bench_pretrain.py --data ../shared/data/tinyshakespeare.txt

The last line printed is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: idle threads must not spin

import argparse
import copy
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.model import ModelConfig, Transformer
from llm_from_scratch.pipeline import Artifacts
from llm_from_scratch.train.data import TokenData, char_data, train_batch
from llm_from_scratch.train.optim import AdamW, param_groups
from llm_from_scratch.train.trainer import TrainConfig, train


# ------------------------------------------------------------------------------------- the GPT-2-style baseline
class GPT2Block(nn.Module):
    """Pre-norm block of GPT-2: LayerNorm (with bias), multi-head attention with biases, GELU MLP 4x wide."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT2Baseline(nn.Module):
    """nanoGPT's `GPT` in 30 lines: token + learned position embeddings, blocks, final LayerNorm, tied head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.wte, self.wpe = nn.Embedding(config.vocab_size, d), nn.Embedding(config.context_length, d)
        self.blocks = nn.ModuleList(GPT2Block(d, config.n_heads) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        self.head.weight = self.wte.weight
        for name, p in self.named_parameters():  # GPT-2 init: N(0, 0.02), residual projections scaled by depth
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * config.n_layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        return logits, loss

    def flops_per_token(self, seq_len: int | None = None) -> int:
        c, T = self.config, seq_len or self.config.context_length
        n_matmul = c.n_layers * 12 * c.d_model**2 + c.d_model * c.vocab_size
        return 3 * (2 * n_matmul + 4 * c.n_layers * T * c.d_model)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ measurement
def seconds_per_step(models: dict[str, nn.Module], data: TokenData, cfg: TrainConfig, steps: int, rounds: int):
    """Median seconds per optimiser step of each model, measured in alternating rounds on copies, so that a
    change in background load hits every model alike."""
    times = {name: [] for name in models}
    block = cfg.block_size
    for r in range(rounds):
        for name, model in models.items():
            m = copy.deepcopy(model)
            opt = AdamW(param_groups(m, cfg.weight_decay), lr=cfg.peak_lr, betas=cfg.betas)
            x, y = train_batch(data, cfg.batch_size, block, 999, r, 0, 1, "cpu")
            m(x, y)[1].backward()  # warm-up step outside the timing
            t0 = time.perf_counter()
            for s in range(steps):
                x, y = train_batch(data, cfg.batch_size, block, 999, s, 0, 1, "cpu")
                _, loss = m(x, y)
                loss.backward()
                nn.utils.clip_grad_norm_(m.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def run(name: str, model: nn.Module, config: ModelConfig, data: TokenData, cfg: TrainConfig) -> dict:
    result = train(config, data, cfg, None, model=model, device="cpu", progress=False, sample_fn=lambda m: "")
    wall = result.last("elapsed")  # seconds inside training steps (evaluation excluded, it is the same for all)
    tokens = cfg.max_steps * cfg.batch_size * cfg.block_size
    print(
        f"{name:>14}: {n_params(model):,} params, {cfg.max_steps} steps, val loss {result.last('val_loss'):.4f}, "
        f"{wall:.0f} s, {tokens / wall:,.0f} tok/s",
        flush=True,
    )
    return {
        "val_loss": result.last("val_loss"),
        "wall_s": wall,
        "tok_per_s": tokens / wall,
        "steps": cfg.max_steps,
        "params": n_params(model),
    }


def llama_config(vocab: int, d: int, layers: int, heads: int, context: int) -> ModelConfig:
    """Ours at GPT-2's parameter count: SwiGLU's three matrices of width 8d/3 hold the 8d^2 of a 4d GELU MLP."""
    hidden = round(8 * d / 3 / 8) * 8
    return ModelConfig(
        vocab_size=vocab,
        context_length=context,
        d_model=d,
        n_layers=layers,
        n_heads=heads,
        n_kv_heads=heads,
        ffn_hidden=hidden,
        dropout=0.0,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="text file to train on at the character level")
    ap.add_argument("--preset", default="book", help="shard preset when --data is not given")
    ap.add_argument("--steps", type=int, default=2000, help="optimiser steps of our model (nanoGPT: 2000)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--sweep-compute",
        type=float,
        default=0.5,
        help="compute of each size-sweep run as a fraction of the main run's (0 skips the sweep)",
    )
    ap.add_argument("--sweep-dims", default="64,128,256")
    ap.add_argument("--timing-steps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument(
        "--plot",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench_pretrain_sizes.png",
        help="where to save the size-sweep figure (PNG)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = char_data(args.data.read_text(encoding="utf-8")) if args.data else Artifacts(args.preset).token_data()
    source = f"char-level {args.data.name}" if args.data else f"{args.preset} shards (BPE)"
    print(f"data: {source}, vocab {data.vocab_size}, threads {torch.get_num_threads()}", flush=True)

    ours_cfg = llama_config(data.vocab_size, args.dim, args.layers, args.heads, args.context)
    base_cfg = dataclasses.replace(ours_cfg, ffn_hidden=4 * args.dim)
    torch.manual_seed(args.seed)
    models = {"ours": Transformer(ours_cfg), "gpt2_baseline": GPT2Baseline(base_cfg)}
    warmup = 100 / 2000  # nanoGPT's 100 warmup iterations out of 2000
    cfg = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch,
        block_size=args.context,
        peak_lr=args.lr,
        warmup_frac=warmup,
        min_lr_ratio=0.1,
        weight_decay=0.1,
        betas=(0.9, 0.99),
        grad_clip=1.0,
        eval_interval=args.steps,
        eval_batches=60,
        log_interval=100,
        autocast="off",
        seed=args.seed,
    )
    sps = seconds_per_step(models, data, cfg, args.timing_steps, rounds=3)
    budget = args.steps * sps["ours"]  # equal wall time: the baseline gets as many steps as fit in ours' time
    steps = {"ours": args.steps, "gpt2_baseline": max(1, round(budget / sps["gpt2_baseline"]))}
    print(f"seconds/step: { ({k: round(v, 4) for k, v in sps.items()}) } -> steps {steps}", flush=True)
    results = {}
    for name, model in models.items():
        cfg_n = dataclasses.replace(cfg, max_steps=steps[name], eval_interval=steps[name])
        results[name] = run(name, model, ours_cfg if name == "ours" else base_cfg, data, cfg_n)

    sweep = []
    if args.sweep_compute > 0:  # fixed compute C: steps = C / (FLOPs per token * tokens per step)
        compute = args.sweep_compute * models["ours"].flops_per_token(args.context) * args.steps
        for d in (int(x) for x in args.sweep_dims.split(",")):
            c = llama_config(data.vocab_size, d, args.layers, max(1, d // 32), args.context)
            torch.manual_seed(args.seed)
            m = Transformer(c)
            n = max(1, round(compute / m.flops_per_token(args.context)))
            r = run(f"size d={d}", m, c, data, dataclasses.replace(cfg, max_steps=n, eval_interval=n))
            sweep.append({"d_model": d, "params": r["params"], "steps": n, "val_loss": r["val_loss"]})
        _plot(sweep, args.plot, compute * args.batch * args.context)

    o, b = results["ours"], results["gpt2_baseline"]
    print(
        json.dumps(
            {
                "data": source,
                "recipe": {
                    "layers": args.layers,
                    "heads": args.heads,
                    "dim": args.dim,
                    "context": args.context,
                    "batch": args.batch,
                    "steps_ours": steps["ours"],
                    "steps_gpt2_baseline": steps["gpt2_baseline"],
                },
                "params_ours": o["params"],
                "params_gpt2_baseline": b["params"],
                "val_loss_ours": round(o["val_loss"], 4),
                "val_loss_gpt2_baseline": round(b["val_loss"], 4),
                "val_loss_ratio": round(o["val_loss"] / b["val_loss"], 4),
                "wall_s_ours": round(o["wall_s"], 1),
                "wall_s_gpt2_baseline": round(b["wall_s"], 1),
                "tok_per_s_ours": round(o["tok_per_s"]),
                "tok_per_s_gpt2_baseline": round(b["tok_per_s"]),
                "nanogpt_reported_val_loss": 1.88,
                "size_sweep": sweep,
            }
        )
    )


def _plot(sweep: list[dict], path: Path, flops: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([s["params"] for s in sweep], [s["val_loss"] for s in sweep], "o-")
    for s in sweep:
        ax.annotate(f"d={s['d_model']}, {s['steps']} steps", (s["params"], s["val_loss"]), fontsize=8)
    ax.set_xscale("log")
    ax.set(xlabel="parameters", ylabel="validation loss", title=f"fixed compute {flops:.2g} FLOPs")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"size sweep figure: {path}", flush=True)


if __name__ == "__main__":
    main()
