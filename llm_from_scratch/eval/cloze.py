"""Next-line multiple choice: a cloze task built from held-out real text, scored by log-likelihood.

Each item shows a few consecutive lines of a held-out document and offers `k` candidates for the line that comes
next: the true one and `k - 1` lines of similar length taken from other held-out documents (or far away in the
same one). The model picks the
candidate it assigns the highest log-likelihood given the context, as in LAMBADA / HellaSwag-style evaluation
(Paperno et al. 2016; Zellers et al. 2019): no generation, no answer parsing, and chance is exactly `1 / k`.
Two scores: the summed log-probability of the candidate (favours short lines) and the log-probability per byte
(the length-normalised variant that lm-evaluation-harness calls `acc_norm`).

The held-out documents are exactly the validation split of the token shards (the same hash rule), so no item's
text was seen in pretraining.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

_MARKUP = tuple("*#_|>=-[{<")  # speaker names, headings, stage directions, tables: not lines of prose or verse


@dataclass(frozen=True)
class ClozeItem:
    context: str  # the preceding lines, each ending with a newline
    choices: tuple[str, ...]
    answer: int  # index of the true next line in `choices`
    doc: int  # index of the held-out document it came from


def heldout_documents(corpus: str | Path, val_fraction: float) -> list[str]:
    """The texts of the curated corpus that the shard writer put in the validation split (same hash rule)."""
    from llm_from_scratch.tokenizer.shards import doc_hash, validation_threshold

    with open(corpus, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    hashes = [doc_hash(t) for t in texts]
    threshold = validation_threshold(hashes, val_fraction)
    return [t for t, h in zip(texts, hashes, strict=True) if h <= threshold]


def _eligible(line: str, min_chars: int, max_chars: int) -> bool:
    line = line.strip()
    return min_chars <= len(line) <= max_chars and len(line.split()) >= 3 and not line.startswith(_MARKUP)


def build_cloze_items(
    docs: Sequence[str],
    n_items: int,
    n_choices: int = 4,
    context_lines: int = 3,
    min_chars: int = 12,
    max_chars: int = 120,
    seed: int = 0,
    far: int = 50,
) -> list[ClozeItem]:
    """Up to `n_items` questions from `docs` (a seeded sample of every eligible line that has
    `context_lines` non-empty lines before it). Distractors come from other documents or from more than `far`
    lines away in the same one (a small held-out split may be a single long play), within 2/3x..3/2x of the true
    line's length where possible, so length alone gives little away."""
    rng = random.Random(seed)
    lines = [[ln.strip() for ln in d.splitlines() if ln.strip()] for d in docs]
    pool = [(d, j, ln) for d, ls in enumerate(lines) for j, ln in enumerate(ls) if _eligible(ln, min_chars, max_chars)]
    slots = [
        (d, i)
        for d, ls in enumerate(lines)
        for i in range(context_lines, len(ls))
        if _eligible(ls[i], min_chars, max_chars)
    ]
    if not slots:
        return []
    items = []
    for d, i in rng.sample(slots, min(n_items, len(slots))):
        true = lines[d][i]
        others = [ln for e, j, ln in pool if (e != d or abs(j - i) > far) and ln != true]
        near = [ln for ln in others if 2 / 3 <= len(ln) / len(true) <= 3 / 2]
        source = near if len(set(near)) >= n_choices - 1 else others
        distractors = rng.sample(sorted(set(source)), min(n_choices - 1, len(set(source))))
        if len(distractors) < n_choices - 1:
            continue  # too few other documents for a full set of choices
        choices = [true, *distractors]
        rng.shuffle(choices)
        context = "".join(ln + "\n" for ln in lines[d][i - context_lines : i])
        items.append(ClozeItem(context, tuple(choices), choices.index(true), d))
    return items


@torch.no_grad()
def choice_logprobs(
    model, tokenizer, items: Sequence[ClozeItem], batch_size: int = 32
) -> list[list[tuple[float, int]]]:
    """`(sum of log-probabilities, UTF-8 bytes)` of every choice of every item given the item's context.

    Each candidate is scored as the line it would be, with its closing newline; the context is cut from the left
    to fit the model's context length.
    """
    from llm_from_scratch.align.sampling import pack_pairs, token_logprobs

    limit = model.config.context_length
    device = model.tok_emb.weight.device
    jobs = []
    for item in items:
        ctx = tokenizer.encode(item.context)
        for choice in item.choices:
            reply = tokenizer.encode(choice + "\n")[: limit - 1]
            jobs.append((ctx[-(limit - len(reply)) :], reply, len((choice + "\n").encode())))
    was = model.training
    model.eval()
    scores = []
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b : b + batch_size]
        idx, labels = pack_pairs([p for p, _, _ in chunk], [r for _, r, _ in chunk])
        logits, _ = model(idx.to(device))
        logp, _ = token_logprobs(logits, labels.to(device))
        scores += [(float(s), n) for s, (_, _, n) in zip(logp.sum(-1).tolist(), chunk, strict=True)]
    model.train(was)
    k = [len(item.choices) for item in items]
    out, pos = [], 0
    for n in k:
        out.append(scores[pos : pos + n])
        pos += n
    return out


def score_cloze(model, tokenizer, items: Sequence[ClozeItem]) -> dict:
    """Accuracy (argmax of the summed log-probability), length-normalised accuracy (per byte), and chance."""
    if not items:
        raise ValueError("no cloze items: the held-out documents have too few eligible lines; lower cloze_min_chars")
    scored = choice_logprobs(model, tokenizer, items)
    hit = hit_norm = 0
    for item, s in zip(items, scored, strict=True):
        hit += max(range(len(s)), key=lambda j: s[j][0]) == item.answer
        hit_norm += max(range(len(s)), key=lambda j: s[j][0] / s[j][1]) == item.answer
    n = len(items)
    return {
        "accuracy": hit / n,
        "accuracy_norm": hit_norm / n,
        "chance": sum(1 / len(i.choices) for i in items) / n,
        "n": n,
    }
