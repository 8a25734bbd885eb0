"""The pipeline as data: every stage declared once, with what it reads, the config sections that key it, the
function that builds its artifact, and the chapters that teach it.

The resolver (`llm_from_scratch.pipeline.resolver`) walks these declarations for the chapters, every stage
command and `llm-from-scratch run` alike; chapter 0 draws them. Adding a stage is one entry here and one build
function in `llm_from_scratch.pipeline.build`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from llm_from_scratch.pipeline import build


@dataclass(frozen=True)
class Stage:
    name: str  # the stage command and the artifact directory's prefix
    inputs: tuple[str, ...]  # the stages whose artifacts it reads: its key includes theirs
    sections: tuple[str, ...]  # the config sections its key hashes
    build: Callable  # build(artifacts, out_dir) -> metrics; writes everything into out_dir
    help: str  # what goes in and what comes out, for --help
    title: str  # label in figures and reports
    chapters: str  # chapter numbers that teach it
    group: str  # data, tokens, training, alignment


STAGES: tuple[Stage, ...] = (
    Stage("curate", (), ("data",), build.curate,
          "raw text (the built-in sources, or your files via data.sources) -> corpus.jsonl, rejected.jsonl, stats.json",
          "Curation", "1-4", "data"),
    Stage("tokenizer", ("curate",), ("tokenizer",), build.tokenizer,
          "the curated corpus -> tokenizer.json (byte-level BPE with the chat special tokens)",
          "Tokenizer (BPE)", "5", "tokens"),
    Stage("shards", ("curate", "tokenizer"), ("shards",), build.shards,
          "corpus + tokenizer -> train/val token shards (shards.json)", "Binary shards", "6", "tokens"),
    Stage("pretrain", ("shards",), ("model", "pretrain"), build.pretrain,
          "shards -> a pretrained Transformer (checkpoints step-*, log.jsonl); resumes from its latest checkpoint",
          "Pretraining", "7-12", "training"),
    Stage("sft", ("pretrain",), ("sft",), build.sft,
          "pretrained model + dialogue data -> a chat model (model/, log.json)", "SFT", "13", "alignment"),
    Stage("preferences", ("sft",), ("preferences", "sft"), build.preferences,
          "the SFT model's own samples, ranked by the verifier -> pairs.json", "Preference pairs", "14", "alignment"),
    Stage("dpo", ("sft", "preferences"), ("dpo",), build.dpo,
          "SFT model + preference pairs -> the DPO model (model/, log.json)", "DPO", "15", "alignment"),
    Stage("reward", ("sft", "preferences"), ("reward",), build.reward,
          "SFT model + preference pairs -> a Bradley-Terry reward model (model/, log.json)",
          "Reward model", "14", "alignment"),
    # the verifier's reward needs only the SFT model; rlhf.reward="model" builds the reward stage on demand, and
    # hashing its sections keeps that variant's key honest
    Stage("rlhf", ("sft",), ("rlhf", "preferences", "reward"), build.rlhf,
          "SFT model + the skill's verifier (or the reward model) -> the GRPO policy (model/, log.json)",
          "RL (GRPO)", "14", "alignment"),
    Stage("eval", ("curate", "shards", "pretrain", "sft", "dpo", "rlhf"), ("eval", "sft"), build.evaluate,
          "every model of the run -> held-out bits per byte, cloze accuracy, reply checks, samples (stage.json)",
          "Evaluation", "16", "alignment"),
)  # fmt: skip
REGISTRY: dict[str, Stage] = {s.name: s for s in STAGES}
MODEL_STAGES = ("pretrain", "sft", "dpo", "rlhf")  # the stages whose artifact is a model


def stage(name: str) -> Stage:
    if name not in REGISTRY:
        raise ValueError(f"unknown stage {name!r}: choose one of {list(REGISTRY)}")
    return REGISTRY[name]


# the map chapter 0 draws: one box per stage
PIPELINE = STAGES

GROUP_COLOURS = {
    "data": "#d8e8f5",
    "tokens": "#e3f1dc",
    "model": "#fbe7c6",
    "training": "#f6d5d5",
    "alignment": "#e6dcf1",
}


def draw_pipeline(stages: tuple[Stage, ...] = STAGES, columns: int = 5):
    """Draw the stages as a snake of boxes (left to right, then right to left), each labelled with its chapter.

    Returns the matplotlib figure; the caller shows or saves it (PNG, so the PDF renders it too).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    rows = -(-len(stages) // columns)
    fig, ax = plt.subplots(figsize=(11, 1.9 * rows))
    w, h, dx, dy = 2.05, 0.9, 2.4, 1.6
    centres = []
    for i, stage in enumerate(stages):
        row, col = divmod(i, columns)
        if row % 2:  # snake, so consecutive stages stay next to each other
            col = columns - 1 - col
        x, y = col * dx, -row * dy
        centres.append((x, y))
        box = FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=GROUP_COLOURS[stage.group], ec="#333333"
        )
        ax.add_patch(box)
        ax.text(x, y + 0.12, stage.title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.22, f"ch. {stage.chapters}: {stage.name}", ha="center", va="center", fontsize=9)
    for (x0, y0), (x1, y1) in itertools.pairwise(centres):
        if y0 == y1:
            sign = 1 if x1 > x0 else -1
            start, end = (x0 + sign * w / 2, y0), (x1 - sign * w / 2, y1)
        else:
            start, end = (x0, y0 - h / 2), (x1, y1 + h / 2)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#333333"))
    ax.set_xlim(-w, (columns - 1) * dx + w)
    ax.set_ylim(-(rows - 1) * dy - h, h)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    return fig
