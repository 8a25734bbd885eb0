"""A labelled evaluation set: real documents plus injected noise whose ground truth is known by construction.

Every filter in this package claims to remove something; this set turns the claim into precision and recall.
Base documents are real (news, Wikipedia, Usenet, Shakespeare scenes); the noise is injected into copies of them
with a seeded generator: near-duplicates at measured Jaccard levels, exact duplicates, gibberish, keyword
stuffing, bullet-list pages, boilerplate lines, PII, profane segments. Real documents are labelled `clean`,
which is itself an assumption: when a filter rejects one, the chapter looks at it instead of trusting the label.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from llm_from_scratch.data.dedup import ShingleHasher, jaccard
from llm_from_scratch.data.normalize import extract
from llm_from_scratch.data.sources import Document, real_documents
from llm_from_scratch.data.toxicity import inject_word, reference_vocabulary, segments

# The noise kinds and the stage expected to catch each (clean and near_dup_below are negatives for every stage).
TARGET_STAGE = {
    "gibberish": "gopher_quality",
    "bullet_list": "gopher_quality",
    "keyword_stuffing": "gopher_repetition",
    "repeated_lines": "gopher_repetition",
    "profane": "toxicity",
    "exact_dup": "exact_dedup",
    "near_dup": "near_dedup",
}

BOILERPLATE_LINES = (
    "Accept all cookies",
    "We use cookies to improve your experience.",
    "Home | News | Sport | Weather | Contact",
    "Share this article",
    "Follow us on social media",
    "Subscribe to our newsletter",
    "Copyright 2024 Example Media. All rights reserved.",
    "Skip to main content",
    "Click here to read more",
    "Sign in",
)


@dataclass
class EvalDoc:
    doc: Document
    kind: str  # "clean", a key of TARGET_STAGE, "near_dup_below" (a copy below the Jaccard threshold)
    jaccard: float | None = None  # for near-duplicates: exact Jaccard with the original
    original: str | None = None  # id of the document it copies
    injected_lines: list[str] = field(default_factory=list)  # boilerplate lines added to a clean document
    injected_pii: int = 0


def base_documents(per_source: int = 60, seed: int = 0) -> list[Document]:
    """Real documents, extracted and normalised: news articles, Wikipedia articles, Usenet posts with at least 80
    words, and Shakespeare scenes (a play is too long to be a typical web page)."""
    rng = np.random.default_rng(seed)
    by_source: dict[str, list[Document]] = {}
    for d in real_documents():
        text = extract(d.text, d.format)
        if d.source == "shakespeare":
            for k, scene in enumerate(re.split(r"\n(?=SCENE [IVXL]+\.)", text)[1:]):
                by_source.setdefault(d.source, []).append(Document(f"{d.id}/scene-{k}", d.source, scene.strip()))
        elif len(text.split()) >= 80:
            by_source.setdefault(d.source, []).append(Document(d.id, d.source, text))
    out = []
    for src in sorted(by_source):
        docs = by_source[src]
        for i in sorted(rng.choice(len(docs), size=min(per_source, len(docs)), replace=False).tolist()):
            out.append(docs[i])
    return out


def perturb_to_jaccard(text: str, target: float, rng: np.random.Generator, hasher: ShingleHasher) -> tuple[str, float]:
    """Replace random words until the exact Jaccard of the shingle sets drops to `target` or just below."""
    words = text.split(" ")
    orig = hasher(text)
    current, j = text, 1.0
    step = max(1, len(words) // 200)
    while True:
        trial = words.copy()
        for i in rng.integers(0, len(words), size=step):
            trial[i] = f"w{int(rng.integers(1e6))}"
        candidate = " ".join(trial)
        jc = jaccard(orig, hasher(candidate))
        if jc < target - 0.02:  # overshoot: take a smaller step from the last accepted text
            if step == 1:
                return current, j
            step = max(1, step // 2)
            continue
        words, current, j = trial, candidate, jc
        if j <= target:
            return current, j


def build_eval_set(per_source: int = 60, seed: int = 0) -> list[EvalDoc]:
    """Clean real documents plus injected noise (sizes scale with `per_source`).

    Two thirds of the real documents are the clean set and the originals of the duplicates; the other third is a
    reserve that the profane and repeated-line documents are made from, so those are not near-copies of a clean
    document. Boilerplate and PII go into clean documents that no copy was made from.
    """
    rng = np.random.default_rng(seed)
    hasher = ShingleHasher(5)
    pool = base_documents(per_source, seed)
    pool = [pool[i] for i in rng.permutation(len(pool))]
    base, reserve = pool[: 2 * len(pool) // 3], pool[2 * len(pool) // 3 :]
    items = [EvalDoc(d, "clean") for d in base]
    vocab = reference_vocabulary()
    words_pool = [w for d in base for w in d.text.split() if w.isalpha()]
    n = max(4, len(base) // 10)
    originals: set[str] = set()

    def pick() -> Document:
        d = base[int(rng.integers(len(base)))]
        originals.add(d.id)
        return d

    for k in range(n):
        d = pick()  # exact duplicate: case and whitespace changed, nothing else
        text = d.text.upper().replace(" ", "  ") if k % 2 else d.text.lower()
        items.append(EvalDoc(Document(f"eval/exact_dup/{k}", d.source, text), "exact_dup", 1.0, d.id))
    for k, target in enumerate(np.tile([0.95, 0.9, 0.85, 0.7, 0.6, 0.5], n // 3 + 1)[: 2 * n]):
        d = pick()
        text, j = perturb_to_jaccard(d.text, float(target), rng, hasher)
        kind = "near_dup" if j >= 0.8 else "near_dup_below"
        items.append(EvalDoc(Document(f"eval/near_dup/{k}", d.source, text), kind, j, d.id))
    letters = "abcdefghijklmnopqrstuvwxyz"
    for k in range(n):
        words = ["".join(rng.choice(list(letters), size=int(rng.integers(1, 14)))) for _ in range(300)]
        if k % 2:  # character soup with digits and symbols
            words = [
                "".join(rng.choice(list(letters + "0123456789#@$%&*"), size=int(rng.integers(2, 9)))) for _ in words
            ]
        items.append(EvalDoc(Document(f"eval/gibberish/{k}", "web", " ".join(words)), "gibberish"))
    for k in range(n):
        keys = rng.choice(words_pool, size=4).tolist()
        phrase = " ".join(["best", keys[0], keys[1], "cheap", keys[2], "buy", keys[3], "online"])
        items.append(EvalDoc(Document(f"eval/keyword_stuffing/{k}", "web", (phrase + ". ") * 40), "keyword_stuffing"))
    for k in range(n):
        items_ = rng.choice(words_pool, size=(60, 3)).tolist()
        text = "\n".join("- " + " ".join(t) for t in items_)
        items.append(EvalDoc(Document(f"eval/bullet_list/{k}", "web", text), "bullet_list"))
    for k in range(n):
        d = reserve[k % len(reserve)]
        lines = [s for s in segments(d.text) if len(s.split()) > 3][:8] or [d.text[:200]]
        text = "\n".join(lines * 6)  # the same paragraph pasted over and over
        items.append(EvalDoc(Document(f"eval/repeated_lines/{k}", "web", text), "repeated_lines"))
    for k in range(n):
        d = reserve[(n + k) % len(reserve)]
        segs = segments(d.text)
        for i in np.flatnonzero(rng.random(len(segs)) < 0.4):
            segs[i] = inject_word(segs[i], vocab[int(rng.integers(len(vocab)))], rng)
        items.append(EvalDoc(Document(f"eval/profane/{k}", d.source, " ".join(segs)), "profane"))
    # Boilerplate and PII are injected into clean documents: the documents stay, the lines/strings must go.
    clean = [it for it in items if it.kind == "clean" and it.doc.source != "shakespeare" and it.doc.id not in originals]
    chosen = rng.choice(len(clean), size=min(2 * n, len(clean)), replace=False)
    for it in [clean[i] for i in chosen[:n]]:
        lines = rng.choice(BOILERPLATE_LINES, size=4, replace=False).tolist()
        it.doc = Document(it.doc.id, it.doc.source, "\n".join([*lines[:2], it.doc.text, *lines[2:]]))
        it.injected_lines = lines
    for k, it in enumerate([clean[i] for i in chosen[n:]]):
        pii = [f"Contact j.smith{k}@example.org for details.", f"Call (555) 123-{4000 + k} today.",
               f"The server at 192.168.{k % 250}.17 was down."]  # fmt: skip
        it.doc = Document(it.doc.id, it.doc.source, it.doc.text + "\n" + " ".join(pii))
        it.injected_pii += 3
    # Real documents first, injected ones after (in random order within each group): a crawl meets the original
    # before its copies, so "keep the first of each cluster" keeps the original.
    n_clean = len(base)
    clean_order = rng.permutation(n_clean)
    noise_order = n_clean + rng.permutation(len(items) - n_clean)
    return [items[i] for i in np.concatenate([clean_order, noise_order])]


def earlier_max_jaccard(items: list[EvalDoc], n: int = 5) -> np.ndarray:
    """For each document, the exact Jaccard similarity with its most similar *earlier* document: the ground truth
    for dedup (a profane copy of a real document, or a real news article published twice, is a duplicate too)."""
    texts = [extract(it.doc.text, it.doc.format) for it in items]
    sets = [np.unique(s) for s in ShingleHasher(n).many(texts)]
    best = np.zeros(len(sets))
    # Inverted index: only pairs that share a shingle can have J > 0.
    postings: dict[int, list[int]] = {}
    for j, s in enumerate(sets):
        shared = Counter(i for x in s.tolist() for i in postings.get(x, ()))
        for i, inter in shared.items():
            best[j] = max(best[j], inter / (len(sets[i]) + len(s) - inter))
        for x in s.tolist():
            postings.setdefault(x, []).append(j)
    return best


# --------------------------------------------------------------------------------------------------------------
# Scoring the pipeline against the labels
# --------------------------------------------------------------------------------------------------------------


LOW_QUALITY = ("gibberish", "bullet_list", "keyword_stuffing", "repeated_lines")
NOISE = (*LOW_QUALITY, "profane", "exact_dup", "near_dup")


def precision_recall(flagged: list[bool], positive: list[bool]) -> dict:
    tp = sum(f and p for f, p in zip(flagged, positive, strict=True))
    return {
        "flagged": sum(flagged),
        "positives": sum(positive),
        "precision": round(tp / max(sum(flagged), 1), 3),
        "recall": round(tp / max(sum(positive), 1), 3),
    }


def rule_decisions(items: list[EvalDoc], config=None) -> dict[str, list[str | None]]:
    """The rejection reason (or None) of each document rule for each document, applied alone, to the text the
    pipeline would hand it: extracted, boilerplate lines removed, verse sources exempt from C4 and FineWeb."""
    from llm_from_scratch.data import filters
    from llm_from_scratch.data.pipeline import PipelineConfig

    cfg = config or PipelineConfig()
    c4, fw = filters.C4Filter(), filters.FineWebFilter()

    def c4_reason(t: str) -> str | None:
        cleaned, _ = c4.clean_lines(t)
        return c4.page_reason(cleaned) if cleaned else "c4:no_lines_left"

    rules = {"gopher_quality": filters.GopherQuality(), "gopher_repetition": filters.GopherRepetition(),
             "c4": c4_reason, "fineweb": fw}  # fmt: skip
    out: dict[str, list[str | None]] = {name: [] for name in rules}
    for it in items:
        text = filters.remove_boilerplate_lines(extract(it.doc.text, it.doc.format))[0].strip()
        verse = it.doc.source in cfg.verse_sources
        for name, rule in rules.items():
            out[name].append(None if verse and name in ("c4", "fineweb") else rule(text))
    return out


def evaluate_stages(items: list[EvalDoc], config=None, scorers: dict | None = None) -> list[dict]:
    """Precision and recall of every stage applied *alone* to the whole labelled set (after extraction), so one
    stage's score does not depend on what an earlier stage already removed.

    Quality rules are scored against the low-quality kinds, toxicity against `profane`, dedup against the copies
    (the originals come first in the stream), boilerplate and PII at the level of injected lines and strings.
    """
    from llm_from_scratch.data import filters
    from llm_from_scratch.data.dedup import MinHasher, StreamingNearDedup, exact_key, near_duplicates
    from llm_from_scratch.data.pipeline import PipelineConfig
    from llm_from_scratch.data.toxicity import flagged_fraction

    cfg = config or PipelineConfig()
    texts = [extract(it.doc.text, it.doc.format) for it in items]
    low = [it.kind in LOW_QUALITY for it in items]
    rows = []

    # Boilerplate lines: line-level precision and recall.
    injected = sum(len(it.injected_lines) for it in items)
    removed = hit = 0
    for it, t in zip(items, texts, strict=True):
        kept, _ = filters.remove_boilerplate_lines(t)
        gone = Counter(t.split("\n")) - Counter(kept.split("\n"))
        removed += sum(gone.values())
        hit += sum(min(gone[line], 1) for line in it.injected_lines)
    rows.append({"stage": "boilerplate (lines)", "flagged": removed, "positives": injected,
                 "precision": round(hit / max(removed, 1), 3), "recall": round(hit / max(injected, 1), 3)})  # fmt: skip

    for name, reasons in rule_decisions(items, cfg).items():
        rows.append({"stage": name, **precision_recall([r is not None for r in reasons], low)})

    profane = [it.kind == "profane" for it in items]
    for name, scorer in (scorers or {}).items():
        flagged = [flagged_fraction(t, scorer, cfg.toxicity_threshold) > cfg.max_toxic_frac for t in texts]
        rows.append({"stage": f"toxicity ({name})", **precision_recall(flagged, profane)})

    masked = hit = 0
    for it, t in zip(items, texts, strict=True):
        counts = filters.mask_pii(t)[1]
        masked += sum(counts.values())
        hit += min(it.injected_pii, sum(counts.values()))
    injected = sum(it.injected_pii for it in items)
    # Precision is not measurable here: real Usenet posts carry real addresses and phone numbers (unlabelled).
    rows.append({"stage": "pii (strings)", "flagged": masked, "positives": injected,
                 "precision": None, "recall": round(hit / max(injected, 1), 3)})  # fmt: skip

    best = earlier_max_jaccard(items, cfg.shingle_n)
    seen: set[bytes] = set()
    flagged = []
    for t in texts:
        key = exact_key(t)
        flagged.append(key in seen)
        seen.add(key)
    rows.append({"stage": "exact_dedup", **precision_recall(flagged, list(best >= 1.0))})

    near = list(best >= cfg.near_dup_threshold)
    shingles = ShingleHasher(cfg.shingle_n).many(texts)
    sigs = MinHasher(cfg.num_perm, cfg.seed).signatures(shingles)
    batch = near_duplicates(shingles, cfg.near_dup_threshold, bands=cfg.bands, rows=cfg.rows, signatures=sigs)
    rows.append({"stage": "near_dedup (batch, exact J)", **precision_recall([bool(x) for x in ~batch.keep], near)})
    stream = StreamingNearDedup(cfg.near_dup_threshold, cfg.bands, cfg.rows)
    flagged = [stream.add(s) is not None for s in sigs]
    rows.append({"stage": "near_dedup (stream, MinHash J)", **precision_recall(flagged, near)})
    return rows


def pipeline_precision_recall(items: list[EvalDoc], rejected_stage: dict[str, str]) -> dict:
    """End to end: is every injected noise document removed (by any stage), and every real document kept?"""
    noise = [it.kind in NOISE for it in items]
    removed = [it.doc.id in rejected_stage for it in items]
    return precision_recall(removed, noise)
