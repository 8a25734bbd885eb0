"""Line-level exact dedup across documents (CCNet's paragraph hashes), streamed in bounded memory.

Boilerplate that survives extraction (a site's disclaimer, a newsgroup's standard footer, a template sentence) is
the same line in thousands of pages. Whole-document dedup cannot see it; CCNet (Wenzek et al. 2020) hashes every
line (a paragraph of a WET file) after normalisation and drops lines whose hash was seen before; C4 (Raffel et al.
2020) does the same with three-sentence spans. Here a line is normalised (lower case, digits to 0, punctuation and
spaces removed, as CCNet does), hashed to 64 bits and looked up in two generations of hash sets: when the current
generation is full it becomes the old one and the previous old one is dropped, so memory is bounded by
`2 * max_hashes` integers and a line is remembered for at least the last `max_hashes` distinct lines.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")
_DIGIT = re.compile(r"\d")


def line_key(line: str) -> int:
    """64-bit hash of CCNet's normalised form of `line`: NFD without accents, lower case, digits as 0,
    punctuation and whitespace removed (so "Posted 3 May." and "posted 4 may" are the same line)."""
    s = unicodedata.normalize("NFD", line.lower())
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = _NON_WORD.sub("", _DIGIT.sub("0", s))
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


class LineDeduper:
    """Remove lines already seen in earlier documents (or earlier in the same one); bounded memory."""

    def __init__(self, min_chars: int = 40, max_hashes: int = 1 << 20):
        self.min_chars = min_chars  # shorter lines ("Thank you.", a speaker's name) repeat legitimately
        self.max_hashes = max_hashes
        self.current: set[int] = set()
        self.old: set[int] = set()

    def _seen_then_add(self, key: int) -> bool:
        if key in self.current or key in self.old:
            return True
        if len(self.current) >= self.max_hashes:  # rotate generations: memory stays bounded
            self.old, self.current = self.current, set()
        self.current.add(key)
        return False

    def __call__(self, text: str) -> tuple[str, int]:
        """`text` without its previously seen lines (blank-line structure kept), and how many were removed."""
        out: list[str] = []
        removed = 0
        for line in text.split("\n"):
            s = line.strip()
            if len(s) >= self.min_chars and self._seen_then_add(line_key(s)):
                removed += 1
                continue
            out.append(line)
        if not removed:
            return text, 0
        return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip(), removed
