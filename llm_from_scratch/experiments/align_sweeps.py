"""The DPO chapter's sweeps: one `DPOConfig` field over several values, everything else as the preset.

Each value is another DPO stage of the same resolver (its upstream SFT model and pairs are reused), evaluated by the
same routine as every other model; models and evaluations are cached like any artifact.
"""

from __future__ import annotations


def dpo_sweep(art, field: str, values: tuple[float, ...]) -> list[dict]:
    """For each value: held-out reply rates, KL to SFT, held-out perplexity, and the final implicit-reward margin."""
    rows = []
    for value in values:
        variant = art.replace(dpo={field: value})
        e = variant.evaluation("dpo")
        rows.append(
            {
                field: value,
                **e["rates"],
                "kl": e["kl"],
                "ppl": e["ppl"],
                "margin": variant.stage_log("dpo")[-1]["margin"],
            }
        )
    return rows
