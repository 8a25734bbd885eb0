"""The CPU speedrun: wall time to nanoGPT's validation loss of 1.88 on tiny-shakespeare at the character level.

The reference is nanoGPT's CPU recipe (`config/train_shakespeare_char.py` with the README's CPU overrides):
a GPT-2-style model of 4 layers, 4 heads, 128 dimensions, context 64, batch 12, AdamW at lr 1e-3 (beta2 0.99,
weight decay 0.1, 100 warmup steps, cosine to 1e-4 at 2000 steps), no dropout, no biases. Ours is the book's
`Transformer` and trainer with the improvements of the speedrun chapter; a `Recipe` is one row of the
ablation table. Both train through `llm_from_scratch.train.trainer.train` on one thread, so the only
differences are the ones a row names.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.model import ModelConfig, Transformer
from llm_from_scratch.train.data import TokenData, char_data
from llm_from_scratch.train.trainer import TrainConfig, train

TARGET_VAL_LOSS = 1.88  # nanoGPT's README: "val loss 1.88" after 2000 iterations of the CPU recipe
TEXT_ENV = "LLM_FROM_SCRATCH_TINYSHAKESPEARE"
REPO_ROOT = Path(__file__).resolve().parents[2]


def tinyshakespeare_path() -> Path:
    """Karpathy's tiny-shakespeare (1,115,394 characters). No PyPI package ships this exact file, so it is read
    from `$LLM_FROM_SCRATCH_TINYSHAKESPEARE` or `../shared/data/tinyshakespeare.txt` next to the repository."""
    path = Path(os.environ.get(TEXT_ENV) or REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt")
    if not path.is_file():
        raise FileNotFoundError(
            f"tiny-shakespeare not found at {path}; download input.txt of karpathy/char-rnn's tinyshakespeare there "
            f"or set {TEXT_ENV}=/path/to/tinyshakespeare.txt"
        )
    return path


def speedrun_data(path: Path | None = None) -> TokenData:
    """The text at the character level: first 90 % train, last 10 % validation (nanoGPT's `prepare.py`)."""
    return char_data((path or tinyshakespeare_path()).read_text(encoding="utf-8"), val_frac=0.1)


class GPT2Block(nn.Module):
    """nanoGPT's `Block` with `bias=False`: LayerNorm, multi-head attention, LayerNorm, a 4x GELU MLP."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT2Reference(nn.Module):
    """nanoGPT's `GPT`: token + learned position embeddings, blocks, final LayerNorm, head tied to the embedding;
    N(0, 0.02) init with the residual projections at 0.02 / sqrt(2 n_layers)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.wte, self.wpe = nn.Embedding(config.vocab_size, d), nn.Embedding(config.context_length, d)
        self.h = nn.ModuleList(GPT2Block(d, config.n_heads) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                residual = name.endswith(("c_proj.weight", "mlp_proj.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layers) if residual else 0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def flops_per_token(self, seq_len: int | None = None) -> int:
        c, T = self.config, seq_len or self.config.context_length
        n_matmul = c.n_layers * 12 * c.d_model**2 + c.d_model * c.vocab_size
        return 3 * (2 * n_matmul + 4 * c.n_layers * T * c.d_model)


# nanoGPT's CPU run: 2000 iterations, 100 of warmup, cosine from 1e-3 to 1e-4, beta2 0.99.
NANOGPT = TrainConfig(
    max_steps=2000,
    batch_size=12,
    block_size=64,
    peak_lr=1e-3,
    warmup_frac=0.05,
    min_lr_ratio=0.1,
    weight_decay=0.1,
    betas=(0.9, 0.99),
    grad_clip=1.0,
    autocast="off",
    seed=1337,
)


@dataclass(frozen=True)
class Recipe:
    """One row of the ablation table: an architecture (`gpt2` = the reference, `llama` = the book's) with a
    shape and model options, and a training config."""

    name: str
    arch: str = "llama"
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    model_options: dict = field(default_factory=dict)  # ModelConfig fields, e.g. {"qk_norm": True}
    train: TrainConfig = NANOGPT

    def model_config(self, vocab_size: int) -> ModelConfig:
        hidden = round(8 * self.d_model / 3 / 8) * 8  # SwiGLU's 3 matrices hold the 8 d^2 of a 4d GELU MLP
        config = ModelConfig(
            vocab_size=vocab_size,
            context_length=self.train.block_size or 64,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            n_kv_heads=self.n_heads,
            ffn_hidden=hidden if self.arch == "llama" else 4 * self.d_model,
        )
        return config.replace(**self.model_options)

    def build(self, vocab_size: int) -> nn.Module:
        config = self.model_config(vocab_size)
        if self.arch == "gpt2":
            return GPT2Reference(config)
        if self.arch == "llama":
            return Transformer(config)
        raise ValueError(f"Recipe.arch must be 'gpt2' or 'llama', got {self.arch!r}")


def race(
    recipes: list[Recipe],
    data: TokenData,
    target: float = TARGET_VAL_LOSS,
    eval_every: int = 50,
    eval_batches: int = 10,
    eval_batch_size: int = 32,
    rounds: int = 10,
    threads: int = 1,
) -> list[dict]:
    """Train every recipe, alternating: each of `rounds` rounds advances every run by a tenth of its budget
    (stop, checkpoint, resume: bit-identical to one uninterrupted run), so a change in the machine's background load
    hits all recipes alike. Returns one `summary` per recipe."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # one thread: the result does not depend on the machine's core count
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="speedrun-") as tmp:
            for r in range(1, rounds + 1):
                for i, recipe in enumerate(recipes):
                    cfg = dataclasses.replace(
                        recipe.train,
                        eval_interval=eval_every,
                        eval_batches=eval_batches,
                        eval_batch_size=eval_batch_size,
                        log_interval=1,
                    )
                    torch.manual_seed(cfg.seed)  # the reference is built outside the trainer: seed its init too
                    model = recipe.build(data.vocab_size)
                    results[i] = train(
                        recipe.model_config(data.vocab_size),
                        data,
                        cfg,
                        Path(tmp) / f"run-{i:02d}",  # names are prose, not file names
                        stop_at=max(1, round(cfg.max_steps * r / rounds)),
                        model=model,
                        device="cpu",
                        progress=False,
                        sample_fn=lambda m: "",
                    )
    finally:
        torch.set_num_threads(previous)
    return [summary(recipe, results[i].records, target) for i, recipe in enumerate(recipes)]


def time_to_target(recipe: Recipe, data: TokenData, target: float = TARGET_VAL_LOSS, **kwargs) -> dict:
    """One recipe alone: `race` of one."""
    return race([recipe], data, target, **kwargs)[0]


def summary(recipe: Recipe, records: list[dict], target: float = TARGET_VAL_LOSS) -> dict:
    """The training seconds (evaluation excluded) until the first evaluation at or below `target` (`None` if
    never), the step of that evaluation, and the final validation loss at the recipe's step budget."""
    elapsed = {r["step"]: r["elapsed"] for r in records if "elapsed" in r}
    evals = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    hit = next(((s, v) for s, v in evals if v <= target and s > 0), None)
    steps = recipe.train.max_steps
    return {
        "name": recipe.name,
        "seconds_to_target": round(elapsed[hit[0]], 2) if hit else None,
        "steps_to_target": hit[0] if hit else None,
        "final_val_loss": round(evals[-1][1], 4),
        "steps": steps,
        "tokens_per_step": recipe.train.batch_size * (recipe.train.block_size or 64),
        "seconds_total": round(elapsed[steps], 2),
        "curve": [(s, round(v, 4), round(elapsed.get(s, 0.0), 2)) for s, v in evals],
    }


def _recipe(name: str, base: Recipe, model_options: dict | None = None, **train_changes) -> Recipe:
    """`base` with one more change: a row of the ablation builds on the row before it."""
    options = {**base.model_options, **(model_options or {})}
    return dataclasses.replace(
        base, name=name, model_options=options, train=dataclasses.replace(base.train, **train_changes)
    )


REFERENCE = Recipe("nanoGPT reference (GPT-2, AdamW)", arch="gpt2")
LLAMA = Recipe("Llama architecture, same recipe")
MUON = _recipe("+ Muon for the hidden matrices, 800 steps", LLAMA, optimizer="muon", max_steps=800)
TUNED = _recipe(
    "+ AdamW lr 3e-3, warmup-stable-decay, 600 steps",
    MUON,
    peak_lr=3e-3,
    warmup_frac=0.02,
    schedule="wsd",
    decay_frac=0.3,
    max_steps=600,
)
BATCH = _recipe("+ batch 32, 240 steps", TUNED, batch_size=32, max_steps=240)
QK_NORM = _recipe("+ QK-norm", BATCH, {"qk_norm": True})
ZERO_INIT = _recipe("+ zero-init output projections", QK_NORM, {"zero_init_proj": True})
SHORT = _recipe("+ budget cut to 200 steps", ZERO_INIT, max_steps=200)
UNTIED = _recipe("+ untied output head", SHORT, {"tie_embeddings": False})
# Fewer, cheaper blocks: at this budget the smaller model is the compute-optimal one (about half the time per step).
SHALLOW = dataclasses.replace(UNTIED, name="+ 2 blocks instead of 4", n_layers=2)
# A momentum of 0.95 averages over ~20 steps, a sixth of a 120-step run; 0.8 (~5 steps) follows the schedule.
MOMENTUM = _recipe("+ Muon momentum 0.8", SHALLOW, muon_momentum=0.8)
EMBED_LR = _recipe("+ AdamW lr 6e-3 (embeddings, head, norms)", MOMENTUM, peak_lr=6e-3)
SHORTER = _recipe("+ budget cut to 120 steps", EMBED_LR, max_steps=120)
ABLATION: list[Recipe] = [
    REFERENCE,
    LLAMA,
    MUON,
    TUNED,
    BATCH,
    QK_NORM,
    ZERO_INIT,
    SHORT,
    UNTIED,
    SHALLOW,
    MOMENTUM,
    EMBED_LR,
    SHORTER,
]
BEST = SHORTER  # the recipe bench_speedrun.py races against the reference
# The fastest row that reaches 1.88 itself (BEST stops between the reference's final loss and 1.88).
BEST_TO_TARGET = EMBED_LR


def seconds_to(summary_row: dict, loss: float) -> float | None:
    """Training seconds until a row's first evaluation at or below `loss` (`None` if never): the time to
    another finish line, read from the stored curve (for instance the reference's own final loss, when the
    reference does not reach nanoGPT's 1.88 on these validation windows)."""
    return next((seconds for step, val, seconds in summary_row["curve"] if step > 0 and val <= loss), None)


def add_ratios(rows: list[dict]) -> dict:
    """Time ratios against `rows[0]` (the reference), in place: at the target (`time_ratio`, `None` if either
    misses it), an upper bound on it (`time_ratio_at_target_upper_bound`: a reference that never reaches the
    target would need longer than its whole run) and at the reference's final loss
    (`time_ratio_at_reference_final`). Returns the finish lines."""
    ref = rows[0]
    finish = ref["final_val_loss"]
    ref_at_finish = seconds_to(ref, finish)
    ref_to_target_at_least = ref["seconds_to_target"] or ref["seconds_total"]
    for row in rows:
        s = row["seconds_to_target"]
        row["time_ratio"] = round(s / ref["seconds_to_target"], 4) if s and ref["seconds_to_target"] else None
        row["time_ratio_at_target_upper_bound"] = round(s / ref_to_target_at_least, 4) if s else None
        row["seconds_to_reference_final"] = seconds_to(row, finish)
        t = row["seconds_to_reference_final"]
        row["time_ratio_at_reference_final"] = round(t / ref_at_finish, 4) if t and ref_at_finish else None
    return {"reference_final_val_loss": finish, "reference_seconds_to_final": ref_at_finish}
