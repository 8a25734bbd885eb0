"""A learned quality classifier: fastText-style bag of word n-grams, trained on reference text against low-quality
text, as GPT-3 (Brown et al. 2020, appendix A), DCLM (Li et al. 2024) and FineWeb-Edu (Penedo et al. 2024) do.

The model is fastText's supervised classifier (Joulin et al. 2017): every word unigram and bigram is hashed into
`buckets` rows of an embedding table, the document vector is the mean of its rows, a linear layer gives the logit:

    h = (1/|G|) sum_{g in G(doc)} E[hash(g)],        P(high quality | doc) = sigmoid(w . h + b)

trained by SGD on the logistic loss with a linearly decaying learning rate. Positives are reference text (the
Wikipedia sample and Shakespeare's plays); negatives are what the rule filters reject from the Usenet and news
samples plus synthetic spam (keyword stuffing, word salad, link lists) made from the corpus's own words. Examples
are 128-word segments; train and test are split by document, so no document is on both sides.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)


def ngram_ids(text: str, buckets: int) -> np.ndarray:
    """Hashed ids of the lower-cased word unigrams and bigrams of `text` (fastText's `-wordNgrams 2`)."""
    words = _WORD.findall(text.lower())
    if not words:
        return np.zeros(0, dtype=np.int64)
    h = np.array([int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") for w in words],
                 dtype=np.uint64)  # fmt: skip
    with np.errstate(over="ignore"):
        bigrams = h[:-1] * _MULT + h[1:]
    return (np.concatenate([h, bigrams]) % np.uint64(buckets)).astype(np.int64)


@dataclass
class FastTextClassifier:
    """Binary fastText: mean of hashed n-gram embeddings, then a logistic output."""

    embeddings: np.ndarray  # (buckets, dim)
    w: np.ndarray  # (dim,)
    b: float = 0.0

    @classmethod
    def fit(
        cls,
        texts: list[str],
        labels: list[int],
        dim: int = 16,
        buckets: int = 1 << 18,
        epochs: int = 5,
        lr: float = 0.5,
        seed: int = 0,
    ) -> FastTextClassifier:
        rng = np.random.default_rng(seed)
        model = cls(rng.uniform(-1 / dim, 1 / dim, (buckets, dim)).astype(np.float32), np.zeros(dim, np.float32))
        # Each example as (distinct ids, their counts): one gather and one scatter per step, no np.add.at.
        ids = [np.unique(ngram_ids(t, buckets), return_counts=True) for t in texts]
        y = np.asarray(labels, dtype=np.float32)
        steps, step = epochs * len(texts), 0
        for _ in range(epochs):
            for i in rng.permutation(len(texts)):
                uniq, counts = ids[i]
                if len(uniq) == 0:
                    continue
                rate = lr * (1 - step / steps)  # fastText's linear decay to zero
                step += 1
                weights = (counts / counts.sum()).astype(np.float32)
                rows = model.embeddings[uniq]
                h = weights @ rows
                g = 1 / (1 + np.exp(-(model.w @ h + model.b))) - y[i]  # d loss / d logit
                grad_h = g * model.w
                model.w -= rate * g * h
                model.b -= rate * g
                model.embeddings[uniq] = rows - rate * np.outer(weights, grad_h)
        return model

    def predict_proba(self, text: str) -> float:
        """P(high quality | text)."""
        ids = ngram_ids(text, self.embeddings.shape[0])
        if len(ids) == 0:
            return 0.0
        h = self.embeddings[ids].mean(axis=0)
        return float(1 / (1 + np.exp(-(self.w @ h + self.b))))


# --------------------------------------------------------------------------------------------------------------
# Training data: reference text vs rule rejects and synthetic spam
# --------------------------------------------------------------------------------------------------------------


def segments(text: str, words: int = 128) -> Iterator[str]:
    """Consecutive `words`-word segments of `text` (the last one may be shorter, but has at least 16 words)."""
    ws = text.split()
    for i in range(0, len(ws), words):
        if len(ws[i : i + words]) >= 16:
            yield " ".join(ws[i : i + words])


def synthetic_spam(vocab: list[str], n: int, seed: int = 0) -> list[str]:
    """Low-quality pages of the kinds web crawls are full of, built from real words: keyword stuffing, word salad
    with sentence punctuation (so it passes C4), link/navigation lists and repeated calls to action."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        pick = lambda m: [vocab[int(i)] for i in rng.integers(len(vocab), size=m)]  # noqa: E731
        kind = k % 4
        if kind == 0:
            kw = pick(3)
            out.append(" ".join(f"{a} {kw[int(rng.integers(3))]} {b}" for a, b in zip(pick(40), pick(40), strict=True)))
        elif kind == 1:
            out.append(" ".join(" ".join(pick(int(rng.integers(5, 12)))).capitalize() + "." for _ in range(12)))
        elif kind == 2:
            out.append("\n".join(" | ".join(pick(5)) for _ in range(10)))
        else:
            w = pick(6)
            out.append(" ".join(f"Click here to get {w[i % 6]} now! Best {w[(i + 1) % 6]} deals." for i in range(10)))
    return out


def rule_reason(text: str) -> str | None:
    """Why the rule filters of the pipeline (boilerplate lines, C4, Gopher, FineWeb) reject `text`, or `None`."""
    from llm_from_scratch.data import filters

    text = filters.remove_boilerplate_lines(text)[0].strip()
    c4 = filters.C4Filter()
    text = c4.clean_lines(text)[0]
    if not text:
        return "c4:no_lines_left"
    for rule in (c4.page_reason, filters.GopherQuality(), filters.GopherRepetition(), filters.FineWebFilter()):
        reason = rule(text)
        if reason is not None:
            return reason
    return None


def _held_out(doc_id: str) -> bool:
    return hashlib.blake2b(doc_id.encode(), digest_size=2).digest()[0] % 5 == 0


@functools.lru_cache(maxsize=1)
def quality_dataset(seed: int = 0, max_positive_segments: int = 4) -> list[tuple[str, int, bool]]:
    """`(segment, label, is_test)`: 1 for reference text, 0 for rule rejects and synthetic spam. At most
    `max_positive_segments` segments (spread over the document) per reference document keep the classes balanced
    and keep a long article from outvoting the others."""
    from llm_from_scratch.data.normalize import extract
    from llm_from_scratch.data.sources import news_articles, shakespeare_plays, usenet_posts, wikipedia_sample

    rows: list[tuple[str, int, bool]] = []
    vocab: set[str] = set()
    for doc in [*wikipedia_sample(), *shakespeare_plays()]:
        text = extract(doc.text, doc.format)
        vocab.update(w for w in text.split()[:2000] if w.isalpha())
        segs = list(segments(text))
        step = max(len(segs) // max_positive_segments, 1)
        rows += [(s, 1, _held_out(doc.id)) for s in segs[::step][:max_positive_segments]]
    for doc in [*usenet_posts(), *news_articles()]:
        text = extract(doc.text, doc.format)
        if rule_reason(text) is not None:
            rows += [(s, 0, _held_out(doc.id)) for s in segments(text)]
    for i, text in enumerate(synthetic_spam(sorted(vocab), 400, seed)):
        rows.append((text, 0, _held_out(f"spam/{i}")))
    return rows


@functools.lru_cache(maxsize=1)
def quality_model() -> FastTextClassifier:
    """The classifier trained on the training part of `quality_dataset` (seconds; cached per process)."""
    train = [(t, y) for t, y, test in quality_dataset() if not test]
    return FastTextClassifier.fit([t for t, _ in train], [y for _, y in train])


def threshold_curve(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> list[dict[str, float]]:
    """Precision and recall of "high quality" (score >= t) for each threshold t, and the fraction kept."""
    rows = []
    for t in thresholds:
        pred = scores >= t
        tp = float((pred & (labels == 1)).sum())
        rows.append(
            {
                "threshold": float(t),
                "precision": tp / max(pred.sum(), 1),
                "recall": tp / max((labels == 1).sum(), 1),
                "kept": float(pred.mean()),
            }
        )
    return rows
