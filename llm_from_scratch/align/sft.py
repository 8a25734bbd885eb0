"""Supervised fine-tuning on dialogue: the pretraining loss, taken on the reply's tokens only.

Batches are right-padded (see `llm_from_scratch.align.sampling.pack_pairs`): in a causal model the pads come
after every real token, so none needs an attention mask, and `-100` labels keep them, and the prompt's tokens,
out of the loss. `mask_prompt=False` is the ablation the chapter plots: the loss then also rewards predicting
the *user's* words, which spends capacity on text the model will never have to write.

The training set is the dialogue data plus `skill.train_examples` arithmetic problems from the training side of
the skill's space (`mix_skill`), drawn uniformly together: the model learns to chat and, partly, to add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from llm_from_scratch.align.skill import SkillConfig
from llm_from_scratch.utils import Range, check_ranges


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 400
    batch_size: int = 16
    lr: float = 1e-3
    warmup_frac: float = 0.05
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_prompt: int = 96  # tokens of prompt (system + user + template), the start of long speeches is cut
    max_reply: int = 64  # examples with longer replies are skipped, never cut (a cut reply teaches not to stop)
    eval_interval: int = 100
    eval_examples: int = 256
    mask_prompt: bool = True
    # batches of examples of similar length (Hugging Face's group_by_length): a batch is padded to its longest
    # example, so a 15-token arithmetic question next to a 150-token speech would cost as much as the speech
    group_by_length: bool = True
    # > 0: a batch is as many length neighbours as fit in this many (padded) tokens instead of `batch_size`
    # examples (fairseq's max_tokens): every step costs about the same, and a batch of 25-token arithmetic
    # questions holds ~6x as many examples as one of speeches (with group_by_length only)
    batch_tokens: int = 0
    # "muon": Muon for the hidden matrices (step muon_lr), AdamW (lr) for the rest, the optimizer the book's base
    # model was pretrained with (Moonshot's "Muon is scalable" found Muon-pretrained models fine-tune best with it)
    optimizer: str = "adamw"
    muon_lr: float = 0.02
    seed: int = 0
    # LoRA (align/lora.py): rank 0 is full fine-tuning; rank r > 0 trains only rank-r adapters on the attention
    # and MLP projections, merged into the weights at the end (the saved model is a plain Transformer)
    lora_rank: int = 0
    lora_alpha: float = 16.0
    # the verifiable skill (align/skill.py): its problems mixed into SFT; later stages read its definition here
    skill: SkillConfig = field(default_factory=SkillConfig)

    def validate(self) -> SFTConfig:
        """One `ValueError` naming the field, its value and the range when a setting cannot work (the config
        loader calls it before any stage runs)."""
        return check_ranges(
            self,
            {
                "steps": Range(ge=1, integer=True),
                "batch_size": Range(ge=1, integer=True),
                "lr": Range(gt=0),
                "warmup_frac": Range(ge=0, le=1),
                "min_lr_ratio": Range(ge=0, le=1),
                "weight_decay": Range(ge=0),
                "grad_clip": Range(ge=0),
                "max_prompt": Range(ge=1, integer=True),
                "max_reply": Range(ge=1, integer=True),
                "eval_interval": Range(ge=1, integer=True),
                "eval_examples": Range(ge=1, integer=True),
                "batch_tokens": Range(ge=0, integer=True),
                "optimizer": Range(choices=("adamw", "muon")),
                "muon_lr": Range(gt=0),
                "lora_rank": Range(ge=0, integer=True),
                "lora_alpha": Range(gt=0),
            },
        )

    def to_dict(self) -> dict:
        """The fields that key the SFT stage's artifact: the LoRA ones only when LoRA is on, so the key of a full
        fine-tuning run is the one it had before LoRA existed (its cached model stays valid)."""
        from dataclasses import asdict

        d = asdict(self)
        if self.lora_rank == 0:
            del d["lora_rank"], d["lora_alpha"]
        return d


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not `-100` (the reply's tokens)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


def tokenize_examples(tokenizer, examples, max_prompt: int, max_reply: int) -> list[tuple[list[int], list[int]]]:
    """`(prompt ids, reply ids + <|end|>)` of each example whose reply fits in `max_reply` tokens."""
    from llm_from_scratch.align.chat import encode_prompt, end_id

    end = end_id(tokenizer)
    out = []
    for ex in examples:
        reply = [*tokenizer.encode(ex.response), end]
        if len(reply) <= max_reply:
            out.append((encode_prompt(tokenizer, ex.prompt, max_prompt), reply))
    return out


def mix_skill(tokenizer, dialogue: list[tuple[list[int], list[int]]], config: SFTConfig) -> list:
    """The dialogue training pairs plus the skill's training examples (tokenized the same way), in a fixed order."""
    from llm_from_scratch.align.data import shuffled
    from llm_from_scratch.align.skill import train_examples

    skill = tokenize_examples(tokenizer, train_examples(config.skill), config.max_prompt, config.max_reply)
    return shuffled([*dialogue, *skill], seed=config.seed)


def batch_labels(pairs: Sequence[tuple[list[int], list[int]]], mask_prompt: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs and labels; without `mask_prompt` the prompt's tokens are targets too."""
    from llm_from_scratch.align.sampling import pack_pairs

    if mask_prompt:
        return pack_pairs([p for p, _ in pairs], [r for _, r in pairs])
    idx, labels = pack_pairs([p[:1] for p, _ in pairs], [p[1:] + r for p, r in pairs])
    return idx, labels


@torch.no_grad()
def reply_loss(model, data: Sequence[tuple[list[int], list[int]]], batch_size: int = 32) -> float:
    """Mean cross-entropy per reply token on `data` (the metric both masked and unmasked runs are judged by)."""
    from llm_from_scratch.align.sampling import pack_pairs

    was = model.training
    model.eval()
    device = model.tok_emb.weight.device
    total, count = 0.0, 0
    for b in range(0, len(data), batch_size):
        chunk = data[b : b + batch_size]
        idx, labels = pack_pairs([p for p, _ in chunk], [r for _, r in chunk])
        logits, _ = model(idx.to(device))
        n = int((labels != -100).sum())
        total += sft_loss(logits, labels.to(device)).item() * n
        count += n
    model.train(was)
    return total / max(count, 1)


def _token_run(by_length: list[int], data, start: int, budget: int) -> list[int]:
    """The run of `by_length` from `start` (shifted left near the end) whose padded size, rows x the longest
    (the last), fits in `budget` tokens; at least one row."""
    size = lambda i: len(data[i][0]) + len(data[i][1])  # noqa: E731
    end = start + 1
    while end < len(by_length) and (end + 1 - start) * size(by_length[end]) <= budget:
        end += 1
    while start > 0 and (end - start + 1) * size(by_length[end - 1]) <= budget:
        start -= 1  # the longest examples: widen to the left so the last batch is full too
    return by_length[start:end]


def train_sft(model, train_data, val_data, config: SFTConfig, progress: bool = False) -> list[dict]:
    """Fine-tune `model` in place (AdamW, or Muon for the hidden matrices; warmup + cosine, the pretraining code),
    all of it or, with `lora_rank > 0`, only low-rank adapters merged at the end; returns the log."""
    from llm_from_scratch.train.optim import AdamW, param_groups
    from llm_from_scratch.train.schedule import lr_at
    from llm_from_scratch.utils import seed_everything

    seed_everything(config.seed)
    device = model.tok_emb.weight.device
    if config.lora_rank > 0:  # freeze the model, wrap its projections in adapters: only those are trained
        from llm_from_scratch.align.lora import LoRAConfig, apply_lora

        apply_lora(model, LoRAConfig(rank=config.lora_rank, alpha=config.lora_alpha))
    if config.optimizer == "muon":  # the schedule below writes each group's lr; Muon's groups scale it by lr_mult
        from llm_from_scratch.train.muon import Muon, muon_param_groups

        groups = muon_param_groups(model, config.weight_decay, config.muon_lr / config.lr)
        opt = Muon(groups, lr=config.lr, betas=(0.9, 0.95))
    else:
        opt = AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(config.seed)
    val = list(val_data)[: config.eval_examples]
    by_length = sorted(range(len(train_data)), key=lambda i: len(train_data[i][0]) + len(train_data[i][1]))
    log = [{"step": 0, "val_reply_loss": reply_loss(model, val)}]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="sft", unit="step", dynamic_ncols=True)
    model.train()
    for step in range(config.steps):
        if config.group_by_length:  # a random run of neighbours in length order (the two ends come a little less often)
            start = int(torch.randint(0, max(len(train_data) - config.batch_size, 0) + 1, (1,), generator=g))
            rows = by_length[start : start + config.batch_size]
            if config.batch_tokens:
                rows = _token_run(by_length, train_data, start, config.batch_tokens)
        else:
            rows = torch.randint(0, len(train_data), (config.batch_size,), generator=g).tolist()
        idx, labels = batch_labels([train_data[i] for i in rows], config.mask_prompt)
        logits, _ = model(idx.to(device))
        loss = sft_loss(logits, labels.to(device))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config.lr, config.steps, config.warmup_frac, config.min_lr_ratio)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
        opt.step()
        record = {"step": step + 1, "loss": loss.item()}
        if (step + 1) % config.eval_interval == 0 or step + 1 == config.steps:
            record["val_reply_loss"] = reply_loss(model, val)
        log.append(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if bar is not None:
        bar.close()
    if config.lora_rank > 0:  # W + (alpha / r) B A folded into W: later stages see an ordinary model
        from llm_from_scratch.align.lora import merge_and_unload

        merge_and_unload(model)
    model.eval()
    return log
