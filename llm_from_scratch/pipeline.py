"""The pipeline the book builds, as data: one entry per stage, in order, with its chapter and its artifact.

Chapter 0 draws it; the end-to-end runner walks it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str  # short label used in figures and reports
    package: str  # where the code lives
    artifact: str  # what the stage hands to the next one
    chapters: str  # chapter numbers that teach it
    group: str  # data, tokens, model, training, alignment


PIPELINE: tuple[Stage, ...] = (
    Stage("Raw text", "data.sources", "documents", "1", "data"),
    Stage("Quality filters", "data.filters", "kept documents", "2", "data"),
    Stage("MinHash dedup", "data.dedup", "unique documents", "3", "data"),
    Stage("Toxicity filter", "data.toxicity", "curated corpus", "4", "data"),
    Stage("Tokenizer (BPE)", "tokenizer", "token ids", "5", "tokens"),
    Stage("Binary shards", "tokenizer.shards", "uint16 shards", "6", "tokens"),
    Stage("Transformer", "model", "model definition", "7-9", "model"),
    Stage("AdamW + schedule", "train", "optimiser", "10", "training"),
    Stage("Pretraining", "train", "base model", "11", "training"),
    Stage("Distributed", "distributed", "same run, N GPUs", "12", "training"),
    Stage("SFT", "align.sft", "chat model", "13", "alignment"),
    Stage("RLHF", "align.rlhf", "reward model + policy", "14", "alignment"),
    Stage("DPO", "align.dpo", "aligned model", "15", "alignment"),
    Stage("Evaluation", "eval", "report card", "16", "alignment"),
)

GROUP_COLOURS = {
    "data": "#d8e8f5",
    "tokens": "#e3f1dc",
    "model": "#fbe7c6",
    "training": "#f6d5d5",
    "alignment": "#e6dcf1",
}


def draw_pipeline(stages: tuple[Stage, ...] = PIPELINE, columns: int = 5):
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
        ax.text(x, y + 0.12, stage.name, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.22, f"ch. {stage.chapters}: {stage.artifact}", ha="center", va="center", fontsize=8)
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
