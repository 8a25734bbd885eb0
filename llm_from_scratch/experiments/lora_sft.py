"""LoRA against full fine-tuning, measured (chapter 13's LoRA section and `benchmarks/lora_smollm2.py`).

Three things are compared at equal steps: what is trained (parameters, and the bytes of gradients and AdamW's
two moments, read off the tensors after a real step), how long a step takes (the two contenders alternated on
the same batches, medians), and what the fine-tuned model then does on held-out problems of the verifiable skill.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

# Chapter 13's comparison on the book model: one more SFT stage (LoRA) and a timing loop, minutes that every
# execution of the chapter need not spend: recorded here by `python -m llm_from_scratch.experiments.lora_sft`
BOOK_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "lora_book.json"


def make_optimizer(model, config) -> torch.optim.Optimizer:
    """The optimiser `train_sft` builds for `config` (`SFTConfig`) over the trainable parameters of `model`."""
    from llm_from_scratch.train.optim import AdamW, param_groups

    if config.optimizer == "muon":
        from llm_from_scratch.train.muon import Muon, muon_param_groups

        groups = muon_param_groups(model, config.weight_decay, config.muon_lr / config.lr)
        return Muon(groups, lr=config.lr, betas=(0.9, 0.95))
    return AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.95))


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor an optimiser keeps between steps (AdamW: the two moments of each trained tensor)."""
    return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v))


def _step(model, opt, idx: torch.Tensor, labels: torch.Tensor, grad_clip: float) -> float:
    from llm_from_scratch.align.sft import sft_loss

    logits, _ = model(idx)
    loss = sft_loss(logits, labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    opt.step()
    return loss.item()


def step_cost(
    model,
    pairs: Sequence[tuple[list[int], list[int]]],
    *,
    rank: int,
    alpha: float,
    batch_size: int,
    steps: int,
    full_config=None,
    lora_config=None,
) -> list[dict]:
    """Full fine-tuning and LoRA (`rank`, `alpha`) of copies of `model`, one SFT step each in turn on the same
    batches of `pairs`, `steps` rounds (the first, which allocates the optimiser's state, is not timed unless it
    is the only one), each with the optimiser its `SFTConfig` names (AdamW by default). Rows: `method`,
    `optimizer`, `trainable`, `grad_bytes`, `optimizer_bytes`, `step_s` (median)."""
    from llm_from_scratch.align.lora import LoRAConfig, apply_lora, trainable_parameters
    from llm_from_scratch.align.sft import SFTConfig, batch_labels

    device = model.tok_emb.weight.device
    full, lora = copy.deepcopy(model).train(), apply_lora(copy.deepcopy(model), LoRAConfig(rank, alpha)).train()
    contenders = {"full fine-tuning": full, f"LoRA r={rank}": lora}
    configs = dict(zip(contenders, (full_config or SFTConfig(lr=1e-4), lora_config or SFTConfig(lr=1e-4)), strict=True))
    opts = {k: make_optimizer(m, configs[k]) for k, m in contenders.items()}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for s in range(steps):
        chunk = [pairs[(s * batch_size + i) % len(pairs)] for i in range(batch_size)]
        idx, labels = (t.to(device) for t in batch_labels(chunk, mask_prompt=True))
        order = list(contenders) if s % 2 == 0 else list(contenders)[::-1]  # alternated: neither always goes first
        for k in order:
            t0 = time.perf_counter()
            _step(contenders[k], opts[k], idx, labels, grad_clip=1.0)
            times[k].append(time.perf_counter() - t0)
    rows = []
    for k, m in contenders.items():
        trained = [p for p in m.parameters() if p.requires_grad]
        rows.append(
            {
                "method": k,
                "optimizer": configs[k].optimizer,
                "trainable": trainable_parameters(m),
                "grad_bytes": sum(p.numel() * p.element_size() for p in trained),
                "optimizer_bytes": state_bytes(opts[k]),
                "step_s": statistics.median(times[k][1:] or times[k]),
            }
        )
    return rows


def _lora_art(art, rank: int, alpha: float, lr: float):
    # LoRA with AdamW, the optimiser of the LoRA paper and of every LoRA recipe since, whatever full SFT uses
    return art.replace(sft={"lora_rank": rank, "lora_alpha": alpha, "lr": lr, "optimizer": "adamw"})


def book_comparison(art, rank: int, alpha: float, lr: float, timing_steps: int = 7) -> dict:
    """Full SFT (the preset's) against LoRA SFT at the same steps and batch on the book model: held-out skill
    accuracy, held-out dialogue reply loss, and `step_cost` on the SFT batches. Cached by both stages' keys."""
    from llm_from_scratch.align.sft import mix_skill
    from llm_from_scratch.experiments.skill_eval import skill_evaluation

    lora_art = _lora_art(art, rank, alpha, lr)
    torch_threads = torch.get_num_threads()
    spec = {"full": art.key("sft"), "lora": lora_art.key("sft"), "timing_steps": timing_steps, "v": 2}

    def compute() -> dict:
        rows = []
        for label, a in (("full fine-tuning", art), (f"LoRA r={rank}", lora_art)):
            m, e = a.stage_metrics("sft"), skill_evaluation(a, "sft")
            rows.append(
                {
                    "method": label,
                    "lr": a.config.sft.lr,
                    "optimizer": a.config.sft.optimizer,
                    "accuracy": e["accuracy"],
                    "problems": e["problems"],
                    "chance": e["chance"],
                    "reply_loss": m["val_reply_loss_after"],
                    "reply_loss_before": m["val_reply_loss_before"],
                }
            )
        dialogue, _ = art.sft_data()
        pairs = mix_skill(art.tokenizer(), dialogue, art.config.sft)
        cost = step_cost(
            art.model("pretrain"),
            pairs,
            rank=rank,
            alpha=alpha,
            batch_size=art.config.sft.batch_size,
            steps=timing_steps,
            full_config=art.config.sft,
            lora_config=lora_art.config.sft,
        )
        for r, c in zip(rows, cost, strict=True):
            r.update({k: v for k, v in c.items() if k != "method"})
        return {"rows": rows, "threads": torch_threads, "steps": art.config.sft.steps}

    return art.cached("lora-vs-full-sft", spec, compute)


def _record_keys(art, rank: int, alpha: float, lr: float) -> dict:
    """The artifact keys of the two SFT models a recorded comparison belongs to."""
    return {"full_key": art.key("sft"), "lora_key": _lora_art(art, rank, alpha, lr).key("sft")}


def load_book_comparison(art, rank: int, alpha: float, lr: float, path: Path = BOOK_RESULTS) -> dict:
    """`book_comparison`'s result as recorded in `path` when it was recorded for this resolver's two SFT models
    (full and LoRA); otherwise built here (cached stages: slow the first time, never stale)."""
    keys = _record_keys(art, rank, alpha, lr)
    if path.exists():
        data = json.loads(path.read_text())
        if all(data.get(k) == v for k, v in keys.items()):
            return data
    return book_comparison(art, rank, alpha, lr)


def exact_reply_accuracy(model, tokenizer, items, max_new_tokens: int = 24, batch_size: int = 32) -> dict:
    """Greedy replies to the skill's `items`: `exact` (the reply is the bare answer and ends its turn), `first`
    (the skill's own check: the reply's first integer is the answer), `contains` (the answer appears anywhere:
    the arithmetic known, whatever the format), and the replies themselves."""
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.align.evaluate import decode_reply
    from llm_from_scratch.align.sampling import sample_replies
    from llm_from_scratch.align.skill import verify_answer

    end = end_id(tokenizer)
    prompts = [encode_prompt(tokenizer, p.prompt()) for p in items]
    s = sample_replies(model, prompts, end, n=1, max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)
    texts = [decode_reply(tokenizer, t, end) for t in s.tokens]
    answers = [items[i].answer for i in s.prompt_index]
    exact = [e and t == str(a) for t, a, e in zip(texts, answers, s.ended, strict=True)]
    first = [verify_answer(t, a) for t, a in zip(texts, answers, strict=True)]
    contains = [str(a) in t for t, a in zip(texts, answers, strict=True)]
    n = max(len(texts), 1)
    return {
        "problems": len(texts),
        "exact": sum(exact) / n,
        "first": sum(first) / n,
        "contains": sum(contains) / n,
        "replies": texts,
    }


def main(argv: list[str] | None = None) -> None:
    from llm_from_scratch.pipeline import Artifacts
    from llm_from_scratch.utils import atomic_path

    parser = argparse.ArgumentParser(description="Record chapter 13's LoRA against full SFT of the book model.")
    parser.add_argument("--preset", default="book", choices=["tiny", "book"])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--out", type=Path, default=BOOK_RESULTS)
    args = parser.parse_args(argv)
    art = Artifacts(args.preset)
    result = book_comparison(art, args.rank, args.alpha, args.lr)
    words = sys.argv[1:] if argv is None else argv
    result = {
        "command": " ".join(["python -m llm_from_scratch.experiments.lora_sft", *words]),
        **_record_keys(art, args.rank, args.alpha, args.lr),
        **result,
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
    main()
