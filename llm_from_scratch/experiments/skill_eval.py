"""The capability measurement of chapters 13-15 and `bench_align.py`: held-out accuracy on the verifiable skill.

Each model stage of a resolver (`base`, `sft`, `rlhf`, `dpo`) answers the same held-out problems greedily;
the exact check scores them; the KL to the SFT model (the start of RL and DPO) is estimated on samples. Cached by
the model's key and the skill's config, like any evaluation of the resolver.
"""

from __future__ import annotations

from dataclasses import asdict


def skill_evaluation(art, stage: str) -> dict:
    """`{"accuracy", "problems", "kl_to_sft", "replies", "correct", "chance"}` of one model stage."""
    from llm_from_scratch.align.skill import chance_accuracy, heldout_problems, skill_accuracy

    name = {"base": "pretrain"}.get(stage, stage)
    cfg = art.config.sft.skill
    reference = None if name in ("pretrain", "sft") else "sft"
    spec = {"skill": asdict(cfg), "model": art.key(name), "reference": reference and art.key(reference)}

    def compute() -> dict:
        items = heldout_problems(cfg)
        r = skill_accuracy(
            art.model(name),
            art.tokenizer(),
            items,
            max_new_tokens=cfg.max_new_tokens,
            reference=art.model(reference) if reference else None,
        )
        return {
            "accuracy": r["accuracy"],
            "problems": r["problems"],
            "kl_to_sft": r["kl"],
            "replies": r["replies"],
            "correct": r["correct"],
            "questions": [p.question for p in items],
            "answers": [p.answer for p in items],
            "chance": chance_accuracy(cfg),
        }

    return art.cached(f"skill-{name}", spec, compute)


def grpo_ablation(art, variants: dict[str, dict]) -> list[dict]:
    """One GRPO run per `{label: rlhf overrides}`, each evaluated on the held-out problems."""
    rows = []
    for label, overrides in variants.items():
        variant = art.replace(rlhf=overrides)
        e = skill_evaluation(variant, "rlhf")
        log = variant.stage_log("rlhf")
        first, last = log[:5], log[-5:]
        rows.append(
            {
                "variant": label,
                "overrides": overrides,
                "accuracy": e["accuracy"],
                "kl_to_sft": e["kl_to_sft"],
                "reward": variant.stage_metrics("rlhf")["reward"],
                # the run's own training reward, first and last five steps (the hacking comparison reads these)
                "reward_first": sum(r["reward"] for r in first) / len(first),
                "reward_last": sum(r["reward"] for r in last) / len(last),
                "replies": e["replies"][:8],
            }
        )
    return rows


def dpo_skill_sweep(art, field: str, values: tuple[float, ...]) -> list[dict]:
    """One DPO run per value of `DPOConfig.field`: held-out accuracy, KL to SFT, the final implicit-reward margin."""
    rows = []
    for value in values:
        variant = art.replace(dpo={field: value})
        e = skill_evaluation(variant, "dpo")
        rows.append(
            {
                field: value,
                "accuracy": e["accuracy"],
                "kl_to_sft": e["kl_to_sft"],
                "margin": variant.stage_log("dpo")[-1]["margin"],
            }
        )
    return rows
