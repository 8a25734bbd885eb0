"""Rule-based quality filters with the published thresholds: Gopher, C4, FineWeb; boilerplate; PII masking.

Each document rule is a small function `text -> reason | None`: `None` keeps the document, a string rejects it
and says why (`"gopher_quality:word_count"`). Line rules return the text with offending lines removed and the
number removed. Thresholds are the ones in the papers:

- Gopher quality and repetition: Rae et al. (2021), *Scaling Language Models*, appendix A.1.1 (MassiveWeb).
- C4: Raffel et al. (2020), *Exploring the Limits of Transfer Learning*, section 2.2.
- FineWeb: Penedo et al. (2024), section 3.6 (the three extra heuristics).
"""

from __future__ import annotations

import itertools
import operator
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------------------

_PUNCT_EDGES = "\"'()[]{}<>.,;:!?*`«»“”‘’-–—#…"  # a lone symbol is not a word


def words_of(text: str) -> list[str]:
    """Whitespace words with surrounding punctuation removed (Gopher counts words this way)."""
    return list(filter(None, map(operator.methodcaller("strip", _PUNCT_EDGES), text.split())))


_LETTER = re.compile(r"[^\W\d_]")


def _nonempty_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


# --------------------------------------------------------------------------------------------------------------
# Gopher quality (Rae et al. 2021, A.1.1)
# --------------------------------------------------------------------------------------------------------------

GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})


@dataclass(frozen=True)
class GopherQuality:
    """Document-level heuristics of MassiveWeb, with the paper's thresholds as defaults."""

    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1  # '#' and '...' (or '…') per word
    max_bullet_lines: float = 0.9  # fraction of lines starting with a bullet
    max_ellipsis_lines: float = 0.3  # fraction of lines ending with an ellipsis
    min_alpha_words: float = 0.8  # fraction of words with at least one letter
    min_stop_words: int = 2  # of GOPHER_STOP_WORDS

    def __call__(self, text: str) -> str | None:
        words = words_of(text)
        n = len(words)
        if n < self.min_words:
            return "gopher_quality:too_few_words"
        if n > self.max_words:
            return "gopher_quality:too_many_words"
        mean_len = sum(map(len, words)) / n
        if not self.min_mean_word_length <= mean_len <= self.max_mean_word_length:
            return "gopher_quality:mean_word_length"
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / n > self.max_symbol_word_ratio:
            return "gopher_quality:symbol_ratio"
        lines = _nonempty_lines(text)
        if lines:
            bullets = sum(line.lstrip().startswith(("•", "*", "-", "‣", "●", "▪")) for line in lines)
            if bullets / len(lines) > self.max_bullet_lines:
                return "gopher_quality:bullet_lines"
            ellipsis = sum(line.rstrip().endswith(("...", "…")) for line in lines)
            if ellipsis / len(lines) > self.max_ellipsis_lines:
                return "gopher_quality:ellipsis_lines"
        # Most words are purely alphabetic (a C-speed check); only the others are searched for a letter.
        alpha = n - sum(1 for w in itertools.filterfalse(str.isalpha, words) if not _LETTER.search(w))
        if alpha / n < self.min_alpha_words:
            return "gopher_quality:alpha_words"
        if len(GOPHER_STOP_WORDS.intersection(map(str.lower, words))) < self.min_stop_words:
            return "gopher_quality:stop_words"
        return None


# --------------------------------------------------------------------------------------------------------------
# Gopher repetition (Rae et al. 2021, table A1)
# --------------------------------------------------------------------------------------------------------------


def duplicate_fractions(parts: list[str]) -> tuple[float, float]:
    """(fraction of parts that duplicate an earlier part, fraction of characters in those duplicates)."""
    if not parts:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_n = dup_chars = total_chars = 0
    for p in parts:
        total_chars += len(p)
        if p in seen:
            dup_n += 1
            dup_chars += len(p)
        else:
            seen.add(p)
    return dup_n / len(parts), dup_chars / max(total_chars, 1)


_NGRAM_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                        0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                        0x2545F4914F6CDD1D, 0x9FB21C651E98DF25], dtype=np.uint64)  # fmt: skip


class _WordArrays:
    """Words as integer ids and character lengths, so n-gram statistics are numpy sorts instead of Counters."""

    def __init__(self, words: list[str]):
        # setdefault(word, position): a word's id is the position of its first occurrence (C-speed map, no sort).
        first: dict[str, int] = {}
        self.ids = np.fromiter(map(first.setdefault, words, itertools.count()), dtype=np.uint64, count=len(words))
        self.lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self.total = int(self.lengths.sum())

    def ngram_counts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(for each window start: how often its n-gram occurs in the document, key of each window)."""
        m = len(self.ids) - n + 1
        key = np.zeros(m, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n):  # a 64-bit hash of the n ids; a collision would need ~2^32 distinct n-grams
                key += self.ids[k : k + m] * _NGRAM_MULT[k]
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        return counts[inverse], key

    def top_fraction(self, n: int) -> float:
        if len(self.ids) < n or self.total == 0:
            return 0.0
        count, _ = self.ngram_counts(n)
        i = int(np.argmax(count))
        if count[i] < 2:
            return 0.0
        return float(self.lengths[i : i + n].sum() * count[i] / self.total)

    def duplicate_fraction(self, n: int) -> float:
        if len(self.ids) < n or self.total == 0:
            return 0.0
        count, _ = self.ngram_counts(n)
        # Mark every word inside a repeated window: +1 at the window start, -1 after its end, then a running sum.
        diff = np.zeros(len(self.ids) + 1, dtype=np.int64)
        starts = np.flatnonzero(count > 1)
        np.add.at(diff, starts, 1)
        np.add.at(diff, starts + n, -1)
        covered = np.cumsum(diff[:-1]) > 0
        return float(self.lengths[covered].sum() / self.total)


def top_ngram_char_fraction(words: list[str], n: int) -> float:
    """Characters covered by the most frequent word n-gram (all its occurrences) over all word characters."""
    return _WordArrays(words).top_fraction(n)


def duplicate_ngram_char_fraction(words: list[str], n: int) -> float:
    """Characters of words covered by any n-gram that occurs more than once, each word counted once."""
    return _WordArrays(words).duplicate_fraction(n)


@dataclass(frozen=True)
class GopherRepetition:
    """Repetition heuristics of MassiveWeb: duplicate lines/paragraphs and repeated n-grams."""

    max_dup_line_frac: float = 0.30
    max_dup_para_frac: float = 0.30
    max_dup_line_char_frac: float = 0.20
    max_dup_para_char_frac: float = 0.20
    top_ngram: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
    dup_ngram: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))

    def __call__(self, text: str) -> str | None:
        para_frac, para_chars = duplicate_fractions(_paragraphs(text))
        if para_frac > self.max_dup_para_frac:
            return "gopher_repetition:dup_paragraphs"
        if para_chars > self.max_dup_para_char_frac:
            return "gopher_repetition:dup_paragraph_chars"
        line_frac, line_chars = duplicate_fractions(_nonempty_lines(text))
        if line_frac > self.max_dup_line_frac:
            return "gopher_repetition:dup_lines"
        if line_chars > self.max_dup_line_char_frac:
            return "gopher_repetition:dup_line_chars"
        arrays = _WordArrays(list(map(str.lower, words_of(text))))
        for n, limit in self.top_ngram:
            if arrays.top_fraction(n) > limit:
                return f"gopher_repetition:top_{n}gram"
        for n, limit in self.dup_ngram:
            if arrays.duplicate_fraction(n) > limit:
                return f"gopher_repetition:dup_{n}gram"
        return None


# --------------------------------------------------------------------------------------------------------------
# C4 (Raffel et al. 2020, section 2.2): line-level cleaning plus three page-level rules
# --------------------------------------------------------------------------------------------------------------

TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)]*(?:\s|$)")


_BULLET_LINE = re.compile(r"^\s*(?:[-*•‣●▪]|\d{1,3}[.)])\s")


def paragraph_units(text: str) -> list[list[str]]:
    """Paragraphs (blank-line separated) as lists of *units*: the lines of a hard-wrapped paragraph are one unit,
    joined with spaces as a browser would render them; a bullet or numbered list item starts a unit of its own.

    This is what C4's line rule must judge: C4 ran on WET files, where a line is a rendered paragraph, so applied to
    text wrapped at 72 columns it would drop every line that happens not to end a sentence.
    """
    paragraphs: list[list[str]] = []
    for block in re.split(r"\n\s*\n", text):
        units: list[str] = []
        for line in block.split("\n"):
            s = " ".join(line.split())
            if not s:
                continue
            if units and not _BULLET_LINE.match(s):
                units[-1] += " " + s
            else:
                units.append(s)
        if units:
            paragraphs.append(units)
    return paragraphs


@dataclass(frozen=True)
class C4Filter:
    """C4's rules. Lines (here: paragraphs, see `paragraph_units`): keep only those ending in terminal
    punctuation with at least `min_words_per_line` words, drop those that mention JavaScript or a cookie/privacy
    policy. Pages: drop those with "lorem ipsum", a curly bracket (code), or fewer than `min_sentences`
    sentences left."""

    min_words_per_line: int = 3
    min_sentences: int = 3
    max_word_length: int = 1000

    def line_reason(self, s: str) -> str | None:
        """Why C4 drops the line (paragraph) `s`, or `None` to keep it."""
        low = s.lower()
        if "javascript" in low:
            return "c4_line:javascript"
        if any(p in low for p in POLICY_PHRASES):
            return "c4_line:policy"
        if not s.endswith(TERMINAL_PUNCTUATION) or s.endswith("..."):
            return "c4_line:no_terminal_punctuation"
        words = s.split()
        if len(words) < self.min_words_per_line:
            return "c4_line:too_few_words"
        if max(map(len, words)) > self.max_word_length:
            return "c4_line:long_word"
        return None

    def clean_lines(self, text: str) -> tuple[str, dict[str, int]]:
        """The text with the dropped units removed: kept units of a paragraph on their own lines (unwrapped),
        paragraphs separated by a blank line; and how many units each reason removed. Wrapped and unwrapped copies
        of a text give the same result."""
        out: list[str] = []
        removed: Counter[str] = Counter()
        for units in paragraph_units(text):
            kept = []
            for unit in units:
                reason = self.line_reason(unit)
                if reason is None:
                    kept.append(unit)
                else:
                    removed[reason] += 1
            if kept:
                out.append("\n".join(kept))
        return "\n\n".join(out), dict(removed)

    def page_reason(self, text: str) -> str | None:
        low = text.lower()
        if "lorem ipsum" in low:
            return "c4:lorem_ipsum"
        if "{" in text:
            return "c4:curly_bracket"
        if len(_SENTENCE_END.findall(text)) < self.min_sentences:
            return "c4:too_few_sentences"
        return None


# --------------------------------------------------------------------------------------------------------------
# FineWeb's additional heuristics (Penedo et al. 2024)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FineWebFilter:
    """The three rules FineWeb added on top of Gopher and C4, with its thresholds."""

    min_punct_line_frac: float = 0.12  # lines ending in punctuation
    max_dup_line_char_frac: float = 0.1  # characters in duplicated lines
    max_short_line_frac: float = 0.67  # lines shorter than short_line_chars
    short_line_chars: int = 30

    def __call__(self, text: str) -> str | None:
        lines = _nonempty_lines(text)
        if not lines:
            return "fineweb:empty"
        if sum(s.rstrip().endswith(TERMINAL_PUNCTUATION) for s in lines) / len(lines) < self.min_punct_line_frac:
            return "fineweb:line_punctuation"
        if duplicate_fractions(lines)[1] > self.max_dup_line_char_frac:
            return "fineweb:dup_line_chars"
        if sum(len(s) <= self.short_line_chars for s in lines) / len(lines) > self.max_short_line_frac:
            return "fineweb:short_lines"
        return None


# --------------------------------------------------------------------------------------------------------------
# Boilerplate lines and PII
# --------------------------------------------------------------------------------------------------------------

BOILERPLATE_PATTERNS = re.compile(
    r"(accept (all )?cookies|we use cookies|cookie (settings|preferences)|all rights reserved|^copyright\b|©"
    r"|click here|read more|subscribe to (our|the) newsletter|sign up for|log ?in|sign in|share (this|on)"
    r"|follow us on|skip to (main )?content|back to top|javascript (is )?(required|disabled)|enable javascript"
    r"|powered by|^(home|menu|search|contact( us)?|about( us)?)$|^\S+( \| \S+){2,}$)",
    re.I,
)
# Every alternative of BOILERPLATE_PATTERNS contains one of these (lower-case) substrings.
_BOILERPLATE_KEYWORDS = ("cookie", "rights reserved", "copyright", "©", "click here", "read more", "subscribe",
                         "sign up", "log", "sign in", "share ", "follow us", "skip to", "back to top", "javascript",
                         "powered by", "home", "menu", "search", "contact", "about", "|")  # fmt: skip


def remove_boilerplate_lines(text: str, max_words: int = 12) -> tuple[str, int]:
    """Drop short lines (at most `max_words` words) that match common web boilerplate: cookie banners,
    navigation bars, share buttons, copyright footers. Long lines are prose that mentions such words; kept."""
    low = text.lower()
    if not any(k in low for k in _BOILERPLATE_KEYWORDS):  # fast substring scans; most documents stop here
        return text, 0
    kept, removed = [], 0
    for line in text.split("\n"):
        s = line.strip()
        if s and s.count(" ") < max_words and BOILERPLATE_PATTERNS.search(s):
            removed += 1
        else:
            kept.append(line)
    return "\n".join(kept), removed


# PII masking lives in its own module (documented phone rules); re-exported for the chapters and evalset.
from llm_from_scratch.data.pii import EMAIL, IPV4, PHONE_NANP, mask_pii  # noqa: E402, F401

DocumentRule = Callable[[str], "str | None"]
