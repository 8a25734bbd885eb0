"""A fast profanity/toxicity classifier built from scratch: hashed n-gram features + logistic regression (numpy).

Labels come from a real offline reference model, `alt-profanity-check` (TF-IDF + calibrated linear SVM trained
on labelled tweets and Wikipedia talk comments). Our model is a distilled, dependency-free copy of it: it can be
no better than the reference, and like the reference it detects *profanity and insults*, not toxicity in general
(hate speech without swear words, threats, harassment pass through both).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from llm_from_scratch.utils import atomic_path, cache_dir, config_key

TOXICITY_VERSION = 2  # bump when features or training data change: cached models are keyed by it
_WORD = re.compile(r"[a-z0-9']+")
_SEGMENT = re.compile(r"(?<=[.!?])\s+|\n+")


def segments(text: str, max_words: int = 16) -> list[str]:
    """Sentences and lines of `text`, long ones cut into pieces of at most `max_words` words.

    Short pieces are the unit both classifiers score: the reference was trained on tweet-length texts, and one
    swear word in a 60-word sentence is diluted below its decision threshold (measured in the chapter).
    """
    out = []
    for s in _SEGMENT.split(text):
        words = s.split()
        for i in range(0, len(words), max_words):
            out.append(" ".join(words[i : i + max_words]))
    return out


# --------------------------------------------------------------------------------------------------------------
# The reference model
# --------------------------------------------------------------------------------------------------------------


def reference_probability(texts: Sequence[str]) -> np.ndarray:
    """P(profane) from `alt-profanity-check` (offline, scikit-learn), one value per text."""
    try:
        from profanity_check import predict_prob
    except ImportError as err:
        raise RuntimeError(
            "the reference toxicity labels come from PyPI 'alt-profanity-check'; "
            "install it with: pip install alt-profanity-check==1.9.1"
        ) from err
    if len(texts) == 0:
        return np.empty(0)
    return np.asarray(predict_prob(list(texts)), dtype=float)


def reference_vocabulary(k: int = 60) -> list[str]:
    """The k words with the largest positive weight in the reference model: what it has learned to flag.

    Used to inject profane lines into real sentences for training and for the labelled evaluation set, so no
    list of offensive words has to be written (or printed) here.
    """
    import profanity_check.profanity_check as pc

    coef = np.mean([np.ravel(c.estimator.coef_) for c in pc.model.calibrated_classifiers_], axis=0)
    names = pc.vectorizer.get_feature_names_out()
    return [str(names[i]) for i in np.argsort(-coef)[:k] if str(names[i]).isalpha()]


# --------------------------------------------------------------------------------------------------------------
# Hashed features
# --------------------------------------------------------------------------------------------------------------


class HashedFeatures:
    """Word unigrams, word bigrams and character n-grams of each word, hashed into `dim` buckets.

    The "hashing trick" (Weinberger et al. 2009): no vocabulary to store, constant memory, unseen words still get
    features through their character n-grams (which also catch spelling variants). Each word's unigram and
    character n-gram ids are computed once and memoised; bigram ids are combined from unigram ids with numpy.
    """

    def __init__(self, dim: int = 1 << 18, char_ngrams: tuple[int, ...] = (3, 4, 5)):
        self.dim, self.char_ngrams = dim, char_ngrams
        self._memo: dict[str, np.ndarray] = {}  # word -> its unigram and character n-gram ids

    def _word(self, w: str) -> np.ndarray:
        padded = f"<{w}>"
        grams = [f"w:{w}"] + [padded[i : i + n] for n in self.char_ngrams for i in range(len(padded) - n + 1)]
        return np.array([zlib.crc32(g.encode()) % self.dim for g in grams], dtype=np.int64)

    def transform(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feature ids, text index of each feature, feature value); values are 1/sqrt(#features of the text),
        so a long text does not get a large score just by being long. One flat pass over all words."""
        tokens = [_WORD.findall(t.lower()) for t in texts]
        words = [w for ws in tokens for w in ws]
        if not words:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
        if len(self._memo) > 200_000:  # bounded memory on an endless stream (~60 MB at most)
            self._memo.clear()
        for w in set(words).difference(self._memo):
            self._memo[w] = self._word(w)
        per_word = list(map(self._memo.__getitem__, words))
        word_text = np.repeat(np.arange(len(texts)), [len(ws) for ws in tokens])
        n_feats = np.fromiter(map(len, per_word), dtype=np.int64, count=len(per_word))
        unigram = np.fromiter((f[0] for f in per_word), dtype=np.int64, count=len(per_word))
        same_text = word_text[:-1] == word_text[1:]  # bigrams never cross from one text into the next
        bigrams = ((unigram[:-1] * 1_000_003 + unigram[1:] * 7 + 1) % self.dim)[same_text]
        feat = np.concatenate([*per_word, bigrams])
        seg = np.concatenate([np.repeat(word_text, n_feats), word_text[:-1][same_text]])
        counts = np.bincount(seg, minlength=len(texts))
        val = 1.0 / np.sqrt(counts[seg])
        return feat, seg, val


# --------------------------------------------------------------------------------------------------------------
# Logistic regression
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToxicityConfig:
    dim: int = 1 << 18
    epochs: int = 100
    lr: float = 0.1
    l2: float = 1e-6
    positive_weight: float = 3.0  # profane segments are rare: weigh their loss up so recall does not collapse
    threshold: float = 0.5
    seed: int = 0


class ToxicityClassifier:
    """p(profane | text) = sigmoid(b + sum_f w_f x_f) over hashed features, trained with full-batch Adam."""

    def __init__(self, config: ToxicityConfig = ToxicityConfig()):
        self.config = config
        self.features = HashedFeatures(config.dim)
        self.w = np.zeros(config.dim)
        self.b = 0.0

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        feat, seg, val = self.features.transform(texts)
        return self.b + np.bincount(seg, weights=self.w[feat] * val, minlength=len(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(texts)))

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> list[float]:
        """Minimise the weighted binary cross-entropy + L2; return the loss per epoch."""
        cfg = self.config
        y = np.asarray(labels, dtype=float)
        feat, seg, val = self.features.transform(texts)
        sample_w = np.where(y > 0.5, cfg.positive_weight, 1.0)
        sample_w /= sample_w.sum()
        m_w, v_w, m_b, v_b = np.zeros_like(self.w), np.zeros_like(self.w), 0.0, 0.0
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        losses = []
        for t in range(1, cfg.epochs + 1):
            z = self.b + np.bincount(seg, weights=self.w[feat] * val, minlength=len(y))
            p = 1.0 / (1.0 + np.exp(-z))
            # log(1 + e^z) - y z, written stably
            losses.append(float(np.sum(sample_w * (np.logaddexp(0.0, z) - y * z))))
            err = sample_w * (p - y)  # d loss / d z
            g_w = np.bincount(feat, weights=err[seg] * val, minlength=cfg.dim) + cfg.l2 * self.w
            g_b = float(err.sum())
            m_w = beta1 * m_w + (1 - beta1) * g_w
            v_w = beta2 * v_w + (1 - beta2) * g_w**2
            m_b = beta1 * m_b + (1 - beta1) * g_b
            v_b = beta2 * v_b + (1 - beta2) * g_b**2
            corr1, corr2 = 1 - beta1**t, 1 - beta2**t
            self.w -= cfg.lr * (m_w / corr1) / (np.sqrt(v_w / corr2) + eps)
            self.b -= cfg.lr * (m_b / corr1) / (np.sqrt(v_b / corr2) + eps)
        return losses

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            cfg = {k: np.array(v) for k, v in asdict(self.config).items()}
            np.savez(f, w=self.w.astype(np.float32), b=np.array([self.b]), **cfg)

    @classmethod
    def load(cls, path: Path) -> ToxicityClassifier:
        with np.load(path) as z:
            cfg = ToxicityConfig(**{k: z[k].item() for k in ToxicityConfig.__dataclass_fields__})
            model = cls(cfg)
            model.w, model.b = z["w"].astype(np.float64), float(z["b"][0])
        return model


# --------------------------------------------------------------------------------------------------------------
# Training data: real sentences, labelled by the reference model
# --------------------------------------------------------------------------------------------------------------


def inject_word(sentence: str, word: str, rng: np.random.Generator) -> str:
    """Insert `word` at a random word boundary of `sentence`."""
    words = sentence.split()
    # Never after the last word: the sentence keeps its final punctuation (and so its line-level statistics).
    words.insert(int(rng.integers(0, max(len(words), 1))), word)
    return " ".join(words)


def training_segments(n: int = 40_000, inject_frac: float = 0.15, seed: int = 0) -> tuple[list[str], list[str]]:
    """(segments, document ids) sampled from the real sources; `inject_frac` of them get one word of the
    reference model's vocabulary inserted, because natural profanity is too rare in these sources to learn from.
    The labels are *not* set by the injection: the reference model labels every segment."""
    from llm_from_scratch.data.normalize import extract
    from llm_from_scratch.data.sources import real_documents

    rng = np.random.default_rng(seed)
    segs, ids = [], []
    for doc in real_documents():
        for s in segments(extract(doc.text, doc.format)):
            if len(s.split()) >= 3:
                segs.append(s)
                ids.append(doc.id)
    pick = np.sort(rng.choice(len(segs), size=min(n, len(segs)), replace=False))
    segs, ids = [segs[i] for i in pick], [ids[i] for i in pick]
    vocab = reference_vocabulary()
    for i in np.flatnonzero(rng.random(len(segs)) < inject_frac):
        segs[i] = inject_word(segs[i], vocab[int(rng.integers(len(vocab)))], rng)
    return segs, ids


def split_by_document(ids: Sequence[str], test_frac: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean test mask that puts whole documents in the test split, so no document leaks across."""
    docs = sorted(set(ids))
    rng = np.random.default_rng(seed)
    test_docs = set(rng.choice(docs, size=max(1, int(len(docs) * test_frac)), replace=False).tolist())
    return np.array([i in test_docs for i in ids])


def train_classifier(config: ToxicityConfig = ToxicityConfig(), n: int = 40_000) -> tuple[ToxicityClassifier, dict]:
    """Train on the document-level train split; return the model and its held-out evaluation against the
    reference: metrics at `config.threshold`, the training losses, and both models' held-out probabilities."""
    texts, ids = training_segments(n, seed=config.seed)
    ref = reference_probability(texts)
    labels = ref >= 0.5
    test = split_by_document(ids, seed=config.seed)
    model = ToxicityClassifier(config)
    losses = model.fit([t for t, m in zip(texts, test, strict=True) if not m], labels[~test])
    test_texts = [t for t, m in zip(texts, test, strict=True) if m]
    p = model.predict_proba(test_texts)
    metrics = binary_metrics(labels[test], p >= config.threshold)
    metrics.update(n_train=int((~test).sum()), n_test=int(test.sum()), positive_rate=float(labels.mean()))
    return model, {"metrics": metrics, "losses": np.array(losses), "reference": ref[test], "ours": p}


def binary_metrics(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Precision, recall, F1 and agreement (accuracy) of `pred` against `truth`."""
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    tp = int((truth & pred).sum())
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": precision, "recall": recall, "f1": f1, "agreement": float((truth == pred).mean())}


def _model_paths(config: ToxicityConfig) -> tuple[Path, Path]:
    key = config_key({"version": TOXICITY_VERSION, "config": config})
    root = cache_dir() / "data"
    return root / f"toxicity-{key}.npz", root / f"toxicity-{key}-eval.npz"


def toxicity_model(config: ToxicityConfig = ToxicityConfig()) -> ToxicityClassifier:
    """The trained classifier, built once into `cache_dir()/data/` (with its held-out evaluation) and loaded."""
    path, eval_path = _model_paths(config)
    if not path.exists():
        model, evaluation = train_classifier(config)
        with atomic_path(eval_path) as tmp, open(tmp, "wb") as f:
            metrics = {k: np.array(v) for k, v in evaluation.pop("metrics").items()}
            np.savez(f, **evaluation, **{f"metric_{k}": v for k, v in metrics.items()})
        model.save(path)
    return ToxicityClassifier.load(path)


def toxicity_evaluation(config: ToxicityConfig = ToxicityConfig()) -> dict:
    """The held-out evaluation stored with the cached model: `metrics`, `losses`, and the held-out
    probabilities of the reference and of our model."""
    toxicity_model(config)
    with np.load(_model_paths(config)[1]) as z:
        out = {k: z[k] for k in z.files if not k.startswith("metric_")}
        out["metrics"] = {k.removeprefix("metric_"): z[k].item() for k in z.files if k.startswith("metric_")}
    return out


# --------------------------------------------------------------------------------------------------------------
# Document-level decision
# --------------------------------------------------------------------------------------------------------------


def flagged_fraction(text: str, scorer, threshold: float = 0.5) -> float:
    """Fraction of the document's segments that the scorer flags (probability >= threshold)."""
    segs = segments(text)
    if not segs:
        return 0.0
    return float(np.mean(scorer(segs) >= threshold))
