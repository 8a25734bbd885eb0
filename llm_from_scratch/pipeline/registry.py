"""The pipeline as data: every stage declared once, with what it reads, the config sections that key it, the
function that builds its artifact, and the chapters that teach it.

The resolver (`llm_from_scratch.pipeline.resolver`) walks these declarations for the chapters, every stage
command and `llm-from-scratch run` alike; chapter 0 draws them. Adding a stage is one entry here and one build
function in `llm_from_scratch.pipeline.build`.
"""

from __future__ import annotations

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


def draw_pipeline(stages: tuple[Stage, ...] = STAGES, width: float = 6.5):
    """Draw the artifact graph of the pipeline: one box per stage (its title, chapters, command and the artifact
    it writes), one arrow per input it reads, laid out top to bottom by dependency depth. An input from the next
    layer up is a straight arrow; one from further up runs down a lane in the margin (one lane per reader, on the
    reader's side), so no arrow crosses a box.

    `width` is in inches (6.5 fits the printed page; every label is at least 8 pt at that size). Returns the
    matplotlib figure; the caller shows or saves it (PNG, so the PDF renders it too).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path

    names = {s.name for s in stages}
    depth: dict[str, int] = {}
    for s in stages:  # the registry lists a stage after its inputs
        depth[s.name] = 1 + max((depth[i] for i in s.inputs if i in depth), default=-1)
    layers = [[s for s in stages if depth[s.name] == d] for d in range(max(depth.values()) + 1)]

    def written(s: Stage) -> str:  # the first output its help names ("... -> corpus.jsonl, rejected.jsonl")
        out = s.help.split("->")[-1].split(" (")[0].split(",")[0].strip()
        return out.removeprefix("a ").removeprefix("the ")

    w, h, gap = 2.05, 0.58, 0.3  # inches: box width and height, vertical gap between layers
    height = len(layers) * (h + gap)
    centre, step = width / 2 - 0.3, w + 0.2  # the main column sits left of centre: the right margin has more lanes
    fig, ax = plt.subplots(figsize=(width, height))
    pos: dict[str, tuple[float, float]] = {}
    for d, layer in enumerate(layers):
        y = height - (d + 0.5) * (h + gap)
        for k, s in enumerate(layer):
            x = centre + (k - (len(layer) - 1) / 2) * step
            pos[s.name] = (x, y)
            ax.add_patch(
                FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=GROUP_COLOURS[s.group],
                               ec="#333333", lw=0.8)
            )  # fmt: skip
            ax.text(x, y + 0.16, s.title, ha="center", va="center", fontsize=9, weight="bold")
            ax.text(x, y - 0.01, f"ch. {s.chapters}, stage {s.name}", ha="center", va="center", fontsize=8)
            ax.text(x, y - 0.18, f"writes: {written(s)}", ha="center", va="center", fontsize=8, style="italic")
    lanes: dict[str, float] = {}
    right_edge = max(x for x, _ in pos.values()) + w / 2
    left_edge = min(x for x, _ in pos.values()) - w / 2
    arrow = dict(arrowstyle="-|>", mutation_scale=9, lw=0.8, color="#555555", shrinkA=0, shrinkB=1)
    for s in stages:
        x1, y1 = pos[s.name]
        for i in s.inputs:
            if i not in names:
                continue
            x0, y0 = pos[i]
            if depth[s.name] - depth[i] == 1:  # the next layer: a straight arrow
                ax.add_patch(FancyArrowPatch((x0, y0 - h / 2), (x1, y1 + h / 2), **arrow))
                continue
            side = -1 if x1 < centre - 0.01 else 1  # a lane on the reader's side; every input of it shares it
            if s.name not in lanes:
                k = sum(1 for n in lanes if (pos[n][0] < centre - 0.01) == (side < 0))
                lanes[s.name] = (right_edge + 0.2 + 0.2 * k) if side > 0 else (left_edge - 0.2 - 0.2 * k)
            lane = lanes[s.name]
            # out below a box's middle, in above it: an arrow entering a box never meets one leaving it
            verts = [(x0 + side * w / 2, y0 - 0.1), (lane, y0 - 0.1), (lane, y1 + 0.1), (x1 + side * w / 2, y1 + 0.1)]
            ax.add_patch(FancyArrowPatch(path=Path(verts), **arrow))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    return fig
