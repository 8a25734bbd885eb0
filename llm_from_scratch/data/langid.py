"""Language identification: a character n-gram naive Bayes classifier, trained on real translation catalogs.

Every web pipeline filters by language first: CCNet (Wenzek et al. 2020) and FineWeb (Penedo et al. 2024) keep a
page when fastText's `lid.176` model (Joulin et al. 2017) gives its language a probability above a threshold
(FineWeb: English >= 0.65). langid.py (Lui & Baldwin 2012) is a multinomial naive Bayes over byte n-grams; this is
the same model over hashed character 1- to 4-grams:

    log P(lang | doc) = log P(lang) + sum_g count(g, doc) * log P(g | lang) - log Z          (Laplace-smoothed)

Training and test text are the gettext catalogs that Sphinx ships for its user interface (`sphinx/locale/*`):
the English `msgid` strings and their human translations into ~20 languages, nobody here wrote them. Catalog
entries are split into train and test by a hash of the English `msgid`, so a message and all its translations
fall on the same side.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import re
from dataclasses import dataclass

import numpy as np

MIN_TRAIN_STRINGS = 100  # a language needs this many translated catalog entries (of >= 4 words) to be modelled
_PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|%[sdr]|\{\w*\}|<[^>]+>|``|\\n|&\w+;")
_MULT = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F], dtype=np.uint64)


def parse_po(text: str) -> list[tuple[str, str]]:
    """`(msgid, msgstr)` pairs of a gettext `.po` file; untranslated and plural entries are skipped."""
    pairs: list[tuple[str, str]] = []
    cur: dict[str, str] = {}
    key = None
    for line in text.split("\n"):
        line = line.strip()
        try:
            if line.startswith("msgid "):
                if cur.get("msgid") and cur.get("msgstr"):
                    pairs.append((cur["msgid"], cur["msgstr"]))
                cur, key = {"msgid": ast.literal_eval(line[6:])}, "msgid"
            elif line.startswith("msgstr "):
                cur["msgstr"], key = ast.literal_eval(line[7:]), "msgstr"
            elif line.startswith('"') and key:
                cur[key] += ast.literal_eval(line)
            elif line.startswith(("msgid_plural", "msgstr[")):
                key = None
                cur.pop("msgstr", None)
        except (SyntaxError, ValueError):  # a malformed string literal: skip the entry, keep the file
            cur, key = {}, None
    if cur.get("msgid") and cur.get("msgstr"):
        pairs.append((cur["msgid"], cur["msgstr"]))
    return pairs


def _clean(s: str) -> str:
    return " ".join(_PLACEHOLDER.sub(" ", s).split())


def _language(locale: str) -> str:
    return locale.split("_")[0].split("@")[0].split(".")[0]  # pt_BR -> pt, zh_TW -> zh


def catalog_samples(min_words: int = 1) -> list[tuple[str, str, bool]]:
    """`(language, text, is_test)` from Sphinx's catalogs: English msgids and the translations of every language
    with at least `MIN_TRAIN_STRINGS` entries. `is_test` holds out a fifth of the messages (by msgid hash)."""
    try:
        files = importlib.metadata.files("sphinx") or []
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            "the language-ID text comes from Sphinx's translation catalogs; install it with: pip install sphinx"
        ) from err
    by_lang: dict[str, dict[str, str]] = {}
    english: dict[str, str] = {}
    for f in sorted(files, key=str):
        parts = str(f).split("/")
        if not str(f).endswith("LC_MESSAGES/sphinx.po") or len(parts) < 3:
            continue
        lang = _language(parts[2])
        if lang == "en":  # en_GB etc. are near-copies of the msgids
            continue
        for msgid, msgstr in parse_po(f.locate().read_bytes().decode("utf-8", errors="replace")):
            src, dst = _clean(msgid), _clean(msgstr)
            if len(dst.split()) >= min_words and dst != src:
                by_lang.setdefault(lang, {})[msgid] = dst
            if len(src.split()) >= min_words:
                english[msgid] = src
    langs = {k: v for k, v in by_lang.items() if sum(len(t.split()) >= 4 for t in v.values()) >= MIN_TRAIN_STRINGS}
    langs["en"] = english

    def held_out(msgid: str) -> bool:
        return hashlib.blake2b(msgid.encode(), digest_size=2).digest()[0] % 5 == 0

    return [(lang, text, held_out(msgid)) for lang in sorted(langs) for msgid, text in sorted(langs[lang].items())]


def char_ngram_ids(text: str, n_max: int, buckets: int) -> np.ndarray:
    """Hashed ids (in `[0, buckets)`) of the character 1..`n_max`-grams of `text`, lower-cased and padded with
    a space on each side so word starts and ends are features of their own."""
    codes = np.frombuffer(f" {text.lower()} ".encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    feats = []
    with np.errstate(over="ignore"):
        for n in range(1, min(n_max, len(codes)) + 1):
            h = np.full(len(codes) - n + 1, n, dtype=np.uint64)
            for k in range(n):
                h = h * np.uint64(1_000_003) + codes[k : len(codes) - n + 1 + k] * _MULT[k]
            feats.append(h % np.uint64(buckets))
    return np.concatenate(feats).astype(np.int64) if feats else np.zeros(0, dtype=np.int64)


@dataclass
class NaiveBayesLangID:
    """Multinomial naive Bayes over hashed character n-grams (langid.py's model family)."""

    labels: list[str]
    log_prior: np.ndarray  # (L,)
    log_likelihood: np.ndarray  # (L, buckets)
    n_max: int = 4

    @classmethod
    def fit(
        cls, texts: list[str], labels: list[str], n_max: int = 4, buckets: int = 1 << 18, alpha: float = 0.1
    ) -> NaiveBayesLangID:
        names = sorted(set(labels))
        ids: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for text, label in zip(texts, labels, strict=True):
            ids[label].append(char_ngram_ids(text, n_max, buckets))
        # One bincount per language instead of one dense vector per string.
        counts = np.stack([np.bincount(np.concatenate(ids[name]), minlength=buckets) for name in names]).astype(float)
        # A uniform prior: the catalogs' sizes say nothing about which language a web page is in.
        log_prior = np.full(len(names), -np.log(len(names)))
        smoothed = counts + alpha
        log_lik = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
        return cls(names, log_prior, log_lik.astype(np.float32), n_max)

    def predict_proba(self, text: str, max_chars: int = 2000) -> np.ndarray:
        """Posterior over `labels`; only the first `max_chars` characters are read (enough, and bounded)."""
        x = char_ngram_ids(text[:max_chars], self.n_max, self.log_likelihood.shape[1])
        scores = self.log_prior + self.log_likelihood[:, x].sum(axis=1)
        scores -= scores.max()
        p = np.exp(scores)
        return p / p.sum()

    def predict(self, text: str) -> tuple[str, float]:
        """(most probable language, its posterior probability)."""
        p = self.predict_proba(text)
        i = int(np.argmax(p))
        return self.labels[i], float(p[i])


@functools.lru_cache(maxsize=1)
def langid_model() -> NaiveBayesLangID:
    """Our classifier trained on the training part of the catalogs (about a second; cached per process)."""
    train = [(lang, text) for lang, text, test in catalog_samples() if not test]
    return NaiveBayesLangID.fit([t for _, t in train], [lang for lang, _ in train])


@functools.lru_cache(maxsize=8)
def _reference_identifier(languages: tuple[str, ...] | None):
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as err:
        raise RuntimeError("the reference language ID is py3langid; install it with: pip install py3langid") from err
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(list(languages) if languages else None)
    return ident


def reference_predict(text: str, languages: tuple[str, ...] | None = None) -> tuple[str, float]:
    """langid.py's packaged model (py3langid; 97 languages): (language, normalised probability). `languages`
    restricts it to a label set, so it can be compared with ours on the same classes."""
    lang, prob = _reference_identifier(languages).classify(text[:2000])
    return lang, float(prob)


def accuracy_table(min_words: int = 4) -> dict[str, dict[str, float]]:
    """Held-out accuracy per language of ours and of the reference (restricted to our languages) on catalog
    entries with at least `min_words` words."""
    model = langid_model()
    rows: dict[str, list[tuple[bool, bool]]] = {}
    for lang, text, test in catalog_samples():
        if test and len(text.split()) >= min_words:
            ours = model.predict(text)[0] == lang
            ref = reference_predict(text, tuple(model.labels))[0] == lang
            rows.setdefault(lang, []).append((ours, ref))
    return {
        lang: {"n": len(r), "ours": float(np.mean([a for a, _ in r])), "reference": float(np.mean([b for _, b in r]))}
        for lang, r in sorted(rows.items())
    }
