"""Alignment that changes what the model can do: held-out accuracy on a skill a program verifies.

The skill (`llm_from_scratch.align.skill`): integer arithmetic asked as a question ("What is 347 + 8?"), the
reply's first integer checked exactly. Every model answers the same held-out problems greedily (problems no SFT,
preference or RL step could draw: the split is a hash of the problem). The baseline is the SFT model; RL is GRPO
with the verifier's reward (KL to SFT kept), DPO learns from verified pairs of the SFT model's own samples. Also
reported, as a secondary row: `format_ok` (the old target: the reply ends its turn, is brief, is not flagged) on
held-out dialogue prompts, and the KL of each model to SFT (nats per reply, sampled).

Bars (issue 16): heldout_problems >= 500, 0.15 <= sft_accuracy <= 0.75, rl_gain >= 0.15, dpo_gain > 0.

    python benchmarks/bench_align.py --preset book     # the book's model (builds every artifact on first use)
    python benchmarks/bench_align.py --preset tiny     # the pipeline end to end (the tiny model learns no arithmetic)

The last line printed is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="book", choices=["tiny", "book"])
    parser.add_argument("--no-format", action="store_true", help="skip the secondary format_ok row (faster)")
    args = parser.parse_args()

    from llm_from_scratch.experiments.skill_eval import skill_evaluation
    from llm_from_scratch.pipeline import Artifacts

    art = Artifacts(args.preset)
    rows, seconds = {}, {}
    for stage in ("base", "sft", "rlhf", "dpo"):
        t = time.perf_counter()
        e = skill_evaluation(art, stage)
        row = {"accuracy": e["accuracy"], "kl_to_sft": e["kl_to_sft"], "problems": e["problems"]}
        if not args.no_format and stage != "base":
            f = art.evaluation(stage)
            row["format_ok"] = f["rates"]["format_ok"]
        rows[stage] = row
        seconds[stage] = time.perf_counter() - t
        print(
            f"{stage:5s} accuracy {row['accuracy']:.3f} on {row['problems']} held-out problems  "
            f"KL to SFT {row['kl_to_sft']:.3f}  format_ok {row.get('format_ok', float('nan')):.3f}  "
            f"({seconds[stage]:.0f}s, cached stages are reused)",
            flush=True,
        )
    chance = e["chance"]
    sft, rl, dpo = rows["sft"], rows["rlhf"], rows["dpo"]
    pairs = art.pairs()[1]
    result = {
        "preset": args.preset,
        "heldout_problems": sft["problems"],
        "chance_accuracy": chance,
        "base_accuracy": rows["base"]["accuracy"],
        "sft_accuracy": sft["accuracy"],
        "rl_accuracy": rl["accuracy"],
        "dpo_accuracy": dpo["accuracy"],
        "rl_gain": rl["accuracy"] - sft["accuracy"],
        "dpo_gain": dpo["accuracy"] - sft["accuracy"],
        "rl_kl_to_sft": rl["kl_to_sft"],
        "dpo_kl_to_sft": dpo["kl_to_sft"],
        "format_ok": {k: v.get("format_ok") for k, v in rows.items() if k != "base"},
        "verified_pairs": pairs.get("skill", {}).get("pairs", 0),
        "rl_config": {k: art.config.rlhf.__dict__[k] for k in ("steps", "advantage", "loss_norm", "kl_coef", "reward")},
        "stage_seconds": {  # build time of each alignment stage when it was built (under whatever load there was);
            # the learned reward model is built only by the chapters and the ablation, not by these four models
            s: json.loads((art.dir(s) / "stage.json").read_text()).get("wall_s") if art.done(s) else None
            for s in ("sft", "preferences", "reward", "rlhf", "dpo")
        },
        "eval_seconds": seconds,
    }
    result["bars"] = {
        "heldout_problems>=500": result["heldout_problems"] >= 500,
        "0.15<=sft_accuracy<=0.75": 0.15 <= result["sft_accuracy"] <= 0.75,
        "rl_gain>=0.15": result["rl_gain"] >= 0.15,
        "dpo_gain>0": result["dpo_gain"] > 0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
