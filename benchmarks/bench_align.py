"""Alignment on held-out prompts: SFT -> DPO and SFT -> RLHF (reward model + GRPO) against their starting point.

The target metric is the verifier's acceptance rate (``llm_from_scratch.align.verifier``: the reply ends its turn
with <|end|>, has at most 20 words, and no segment is flagged by the profanity classifier), measured on replies
sampled at temperature 1 to held-out prompts (plays and questions no fine-tuning step saw). Also reported: the
Monte-Carlo KL to the starting model (nats per reply) and the perplexity on the pretraining corpus's held-out
validation windows (the "alignment tax").

Bar (issue 8): DPO improves the acceptance rate by >= 20 percentage points over SFT, or halves its failure rate.

    python benchmarks/bench_align.py --preset book     # the book's model (builds every artifact on first use)
    python benchmarks/bench_align.py --preset tiny     # the pipeline end to end in a few minutes

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
    args = parser.parse_args()

    from llm_from_scratch.pipeline import Artifacts

    # the chapters' evaluation: 200 held-out prompts x 2 samples for tiny, the preset's 256 x 2 for the book
    art = Artifacts(
        args.preset, overrides={"eval": {"align_prompts": 200, "align_samples": 2}} if args.preset == "tiny" else None
    )

    t0 = time.perf_counter()
    rows = {}
    for stage in ("base", "sft", "dpo", "rlhf"):
        t = time.perf_counter()
        e = art.evaluation(stage)
        rows[stage] = {
            "ok": e["rates"]["ok"],
            "ended": e["rates"]["ended"],
            "brief": e["rates"]["brief"],
            "flagged": e["rates"]["flagged"],
            "kl_to_start": e["kl"],
            "heldout_ppl": e["ppl"],
            "n_replies": len(e["replies"]),
            "n_prompts": len(e["prompts"]),
        }
        print(
            f"{stage:5s} ok {e['rates']['ok']:.3f}  ended {e['rates']['ended']:.3f}  brief {e['rates']['brief']:.3f}  "
            f"flagged {e['rates']['flagged']:.3f}  KL {e['kl']:.3f}  ppl {e['ppl']:.2f}  "
            f"({time.perf_counter() - t:.0f}s)",
            flush=True,
        )
    _, pair_stats = art.pairs()
    rm_metrics = art.stage_metrics("reward")
    sft, dpo, rlhf = rows["sft"], rows["dpo"], rows["rlhf"]

    def gain(after):
        fail_before, fail_after = 1 - sft["ok"], 1 - after["ok"]
        return {
            "ok_before": sft["ok"],
            "ok_after": after["ok"],
            "gain_pp": 100 * (after["ok"] - sft["ok"]),
            "failure_ratio": fail_after / fail_before if fail_before else None,
            "kl_to_sft": after["kl_to_start"],
            "ppl_before": sft["heldout_ppl"],
            "ppl_after": after["heldout_ppl"],
            "ppl_change_pct": 100 * (after["heldout_ppl"] / sft["heldout_ppl"] - 1),
        }

    d, r = gain(dpo), gain(rlhf)
    bar = d["gain_pp"] >= 20 or (d["failure_ratio"] is not None and d["failure_ratio"] <= 0.5)
    print(
        f"SFT->DPO:  ok {d['ok_before']:.3f} -> {d['ok_after']:.3f} ({d['gain_pp']:+.1f} pp), KL {d['kl_to_sft']:.3f}"
    )
    print(
        f"SFT->RLHF: ok {r['ok_before']:.3f} -> {r['ok_after']:.3f} ({r['gain_pp']:+.1f} pp), KL {r['kl_to_sft']:.3f}"
    )
    print(
        f"preference pairs {pair_stats['pairs']}, reward model held-out accuracy {rm_metrics['held_out_accuracy']:.3f}"
    )
    print(f"bar (DPO +20 pp or failure rate halved): {'met' if bar else 'NOT met'}")
    out = {
        "preset": args.preset,
        "stages": rows,
        "sft_to_dpo": d,
        "sft_to_rlhf": r,
        "preference_pairs": pair_stats["pairs"],
        "reward_model": rm_metrics,
        "bar_dpo_met": bar,
        "seconds": time.perf_counter() - t0,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
