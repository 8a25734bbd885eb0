"""The alignment chapters' ablations, recorded: GRPO variants (chapter 14) and DPO's anchor and beta (chapter 15).

Each row is one more RL or DPO stage of the same resolver (the SFT model and the pairs are reused) evaluated on the
held-out problems. At the book's scale the rows together cost more than the alignment stages themselves, so they
are not rebuilt on every execution of the chapters: this module's command builds them and writes
`benchmarks/results/align_ablations.json` (the command, the SFT model's key, the rows), and the chapters read that
file when it was recorded for the SFT model they evaluate (and build the rows themselves when it was not).

    python -m llm_from_scratch.experiments.align_sweeps --preset book
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "align_ablations.json"

# one setting changed per row, everything else as the preset (GRPO with the verifier's reward, KL kept)
GRPO_VARIANTS = {
    "GRPO (std, per-reply mean)": {"advantage": "std", "loss_norm": "seq"},
    "Dr. GRPO (no std, constant norm)": {"advantage": "mean", "loss_norm": "constant"},
    "+ format reward 0.2": {"format_bonus": 0.2},
    "learned reward model": {"reward": "model"},
    # the batch and the length of the run: the preset's earlier setting (16 problems per step at lr 1e-4, 80 steps),
    # twice as many steps of it, and the preset's batch and lr for 80 steps
    "16 problems/step, lr 1e-4, 80 steps": {"prompts_per_step": 16, "lr": 1e-4, "steps": 80},
    "16 problems/step, lr 1e-4, 160 steps": {"prompts_per_step": 16, "lr": 1e-4, "steps": 160},
    "32 problems/step, lr 2e-4, 80 steps": {"prompts_per_step": 32, "lr": 2e-4, "steps": 80},
}
DPO_SWEEPS = {"epochs": (1, 3), "nll_weight": (0.0, 1.0), "beta": (0.1, 0.3)}


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


def record_ablations(art, command: str) -> dict:
    """Build every ablation row of chapters 14 and 15 for `art` and return them with what keys them."""
    from llm_from_scratch.experiments.skill_eval import dpo_skill_sweep, grpo_ablation, skill_evaluation

    for overrides in list(GRPO_VARIANTS.values())[1:]:  # the preset's own run (the first) last: `run` may be
        art.replace(rlhf=overrides).ensure("rlhf")  # building it now, and the others need only the SFT model
    return {
        "command": command,
        "preset": art.config.run.preset,
        "sft_key": art.key("sft"),
        "sft_accuracy": skill_evaluation(art, "sft")["accuracy"],
        "grpo": grpo_ablation(art, GRPO_VARIANTS),
        "dpo": {field: dpo_skill_sweep(art, field, values) for field, values in DPO_SWEEPS.items()},
    }


def load_ablations(art, path: Path = RESULTS) -> dict:
    """The recorded rows when `path` holds them for this resolver's SFT model; otherwise (no file, another preset
    or SFT model) the rows are built here, as cached stages of the resolver: slow the first time, never stale."""
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("sft_key") == art.key("sft"):
            return data
    return record_ablations(art, f"built by this execution (no recorded rows for SFT model {art.key('sft')})")


def main(argv: list[str] | None = None) -> None:
    from llm_from_scratch.pipeline import Artifacts
    from llm_from_scratch.utils import atomic_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="book", choices=["tiny", "book"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = "python -m llm_from_scratch.experiments.align_sweeps " + " ".join(sys.argv[1:] if argv is None else argv)
    result = record_ablations(Artifacts(args.preset), command.strip())
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "dpo"}))


if __name__ == "__main__":
    main()
