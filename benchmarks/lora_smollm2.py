"""LoRA SFT of SmolLM2-135M-Instruct on the verifiable skill, measured on held-out problems (chapter 13).

    .venv/bin/python benchmarks/lora_smollm2.py [--threads 2] [--out benchmarks/results/lora_smollm2.json]

The behaviour taught: answer the skill's arithmetic questions (`What is 47 + 38?`) with the bare number and end the
turn (`<|im_end|>`) in the model's own chat template. Before and after a short LoRA SFT on problems from the
training side of the skill's space, greedy replies to `--problems` held-out problems (never trained on) are scored
three ways: `exact` (the reply is the bare answer and ends its turn: the behaviour), `first` (the package's
verifier: the first integer is the answer) and `contains` (the answer is written somewhere: the arithmetic, whatever
the format). Then one LoRA step and one full fine-tuning step are timed alternately on the same batches, with the
parameters, gradient and AdamW-state bytes of each. Writes everything, the command and the wall time to the JSON
file; the last line printed is a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--problems", type=int, default=200, help="held-out problems scored before and after")
    parser.add_argument("--timing-steps", type=int, default=3, help="alternated rounds of LoRA and full steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lora_smollm2.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from llm_from_scratch.align.lora import LoRAConfig
    from llm_from_scratch.align.sft import SFTConfig, tokenize_examples, train_sft
    from llm_from_scratch.align.skill import SkillConfig, heldout_problems, train_examples
    from llm_from_scratch.experiments.lora_sft import exact_reply_accuracy, step_cost
    from llm_from_scratch.model.gguf import load_gguf
    from llm_from_scratch.utils import atomic_path

    LoRAConfig(args.rank, args.alpha).validate()  # a bad rank fails here, before minutes of loading and scoring
    t_start = time.perf_counter()
    skill = SkillConfig(heldout_problems=max(args.problems, 1))
    model, tok, _ = load_gguf("smollm2")
    held = heldout_problems(skill)[: args.problems]
    before = exact_reply_accuracy(model, tok, held)
    print(json.dumps({k: v for k, v in before.items() if k != "replies"} | {"when": "before"}), flush=True)

    cfg = SFTConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_frac=0.1,
        weight_decay=0.0,
        eval_interval=args.steps,
        eval_examples=64,
        group_by_length=False,  # the problems are all of one length
        lora_rank=args.rank,
        lora_alpha=args.alpha,
        seed=0,
    ).validate()
    train = tokenize_examples(tok, train_examples(skill, n=args.steps * args.batch_size), 96, 16)
    val = tokenize_examples(tok, [p.example() for p in held[:64]], 96, 16)
    t0 = time.perf_counter()
    log = train_sft(model, train, val, cfg)
    train_s = time.perf_counter() - t0
    after = exact_reply_accuracy(model, tok, held)
    print(json.dumps({k: v for k, v in after.items() if k != "replies"} | {"when": "after"}), flush=True)

    # the timing uses a fresh copy of the pretrained model: the same shapes, the same work per step
    base, _, _ = load_gguf("smollm2")
    cost = step_cost(
        base, train, rank=args.rank, alpha=args.alpha, batch_size=args.batch_size, steps=args.timing_steps + 1
    )
    wall = time.perf_counter() - t_start
    result = {
        "command": "python benchmarks/lora_smollm2.py " + " ".join(sys.argv[1:]),
        "wall_s": wall,
        "threads": args.threads,
        "model": "SmolLM2-135M-Instruct (GGUF, fp32)",
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "train_examples": len(train),
        "train_s": train_s,
        "val_reply_loss": [r["val_reply_loss"] for r in log if "val_reply_loss" in r],
        "log": log,
        "before": before,
        "after": after,
        "questions": [p.question for p in held],
        "answers": [p.answer for p in held],
        "cost": cost,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    summary = {
        "exact_before": before["exact"],
        "exact_after": after["exact"],
        "contains_before": before["contains"],
        "contains_after": after["contains"],
        "wall_s": round(wall),
    }
    summary |= {f"{r['method']} step_s": round(r["step_s"], 2) for r in cost}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
