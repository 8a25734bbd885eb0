"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash + LSH banding), from scratch.

MinHash (Broder 1997): for a random hash function h, P[min h(A) = min h(B)] = |A ∩ B| / |A ∪ B| = J(A, B), so the
fraction of equal entries of two k-entry signatures estimates the Jaccard similarity. LSH banding (Leskovec et al.,
*Mining of Massive Datasets*, ch. 3) cuts the signature into b bands of r rows; two documents become a candidate pair
when any band matches exactly, which happens with probability 1 - (1 - s^r)^b.

The from-scratch path is vectorised: every shingle is hashed once to a 32-bit integer, and the k hash functions
h_i(x) = (a_i x + b_i) mod p are applied to a whole batch of documents as one (k x shingles) array, reduced per
document with `np.minimum.reduceat`. `datasketch` is the production reference (same shingles, same k).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

MERSENNE_32 = np.uint64(4294967291)  # largest prime below 2**32: a*x + b < 2**64 for a, b, x < p, no overflow
EMPTY_SIGNATURE_VALUE = np.uint64(0xFFFFFFFF)  # no hash function value is larger
_WORD = re.compile(r"\w+")

# --------------------------------------------------------------------------------------------------------------
# Exact duplicates
# --------------------------------------------------------------------------------------------------------------

_NOT_WORD = re.compile(r"[\W_]+")
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")  # combining marks


def exact_key(text: str) -> bytes:
    """A 16-byte key equal for texts that differ only in case, punctuation, accents or whitespace."""
    text = text.lower()
    if not text.isascii():  # strip accents: decompose, drop the combining marks
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return hashlib.blake2b(_NOT_WORD.sub(" ", text).strip().encode(), digest_size=16).digest()


# --------------------------------------------------------------------------------------------------------------
# Shingles
# --------------------------------------------------------------------------------------------------------------


def words_for_shingles(text: str) -> list[str]:
    """Lower-cased word tokens; shingles are n-grams of these (the same for ours and datasketch)."""
    return _WORD.findall(text.lower())


def shingle_strings(text: str, n: int = 5) -> list[bytes]:
    """The word n-gram shingles as bytes, the form `datasketch` hashes (one SHA-1 per shingle).

    A document shorter than n words is one shingle (itself), so it still has a signature.
    """
    w = words_for_shingles(text)
    if len(w) < n:
        return [" ".join(w).encode()] if w else []
    return [" ".join(w[i : i + n]).encode() for i in range(len(w) - n + 1)]


class ShingleHasher:
    """Hash word n-grams to uint32 without a Python loop over n-grams.

    Each distinct word is hashed once (BLAKE2b, memoised); an n-gram's hash combines its n word hashes with
    odd 64-bit multipliers in wrapping uint64 arithmetic, then a final avalanche mixes the bits.
    """

    _MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                      0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                      0x2545F4914F6CDD1D, 0x9FB21C651E98DF25], dtype=np.uint64)  # fmt: skip

    _SEP = "QQSEPQQ"  # texts are lower-cased before tokenising, so this upper-case token never occurs in them

    def __init__(self, n: int = 5, max_vocab: int = 500_000):
        if not 1 <= n <= len(self._MULT):
            raise ValueError(f"shingle size n={n} must be between 1 and {len(self._MULT)}")
        self.n, self.max_vocab = n, max_vocab
        self._reset()

    def _reset(self) -> None:
        # word -> dense id; the 64-bit hash of id i is self._table[i]. A dense id lets numpy look hashes up in bulk.
        self._ids: dict[str, int] = {}
        self._hashes: list[int] = []
        self._table = np.empty(0, dtype=np.uint64)

    def _word_hashes(self, words: list[str]) -> np.ndarray:
        if len(self._ids) > self.max_vocab:  # bounded memory on an endless stream
            self._reset()
        for w in set(words).difference(self._ids):  # hash each new word once (BLAKE2b: stable across processes)
            self._ids[w] = len(self._hashes)
            self._hashes.append(int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little"))
        ids = list(map(self._ids.__getitem__, words))  # dictionary lookups at C speed
        if len(self._hashes) > len(self._table):
            self._table = np.array(self._hashes, dtype=np.uint64)
        return self._table[np.array(ids, dtype=np.int64)]

    def _combine(self, hashes: np.ndarray, m: int) -> np.ndarray:
        """n-gram hashes of the m windows of `hashes` (wrapping uint64 arithmetic), top 32 bits kept."""
        h = np.zeros(m, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(self.n):
                h += hashes[k : k + m] * self._MULT[k]
            h ^= h >> np.uint64(33)  # murmur3 finaliser: spread the bits before keeping the top 32
            h *= np.uint64(0xFF51AFD7ED558CCD)
            h ^= h >> np.uint64(33)
        return (h >> np.uint64(32)).astype(np.uint32)

    def __call__(self, text: str) -> np.ndarray:
        """The uint32 shingle hashes of `text` (duplicates kept; MinHash takes a minimum, so they do not matter)."""
        return self.many([text])[0]

    def many(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Shingle hashes of several texts with one tokeniser call and one vectorised pass over all their words.

        The texts are joined with a separator token; the n-gram hash is computed at every position, and each
        text keeps the windows that lie inside it. A text shorter than n words is one shingle (padded).
        """
        n = self.n
        if not texts:
            return []
        words = _WORD.findall(f" {self._SEP} ".join(t.lower() for t in texts))
        hashes = self._word_hashes(words)
        seps = np.flatnonzero(hashes == self._word_hashes([self._SEP])[0])
        starts = np.concatenate([[0], seps + 1])
        ends = np.concatenate([seps, [len(words)]])
        h32 = self._combine(hashes, max(len(words) - n + 1, 0))
        pad = self._word_hashes([""])[0]
        out = []
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            if e - s >= n:
                out.append(h32[s : e - n + 1])
            elif e > s:  # a short text: pad it with the empty word to one shingle
                out.append(self._combine(np.concatenate([hashes[s:e], np.full(n - (e - s), pad)]), 1))
            else:
                out.append(np.empty(0, dtype=np.uint32))
        return out


# --------------------------------------------------------------------------------------------------------------
# MinHash signatures
# --------------------------------------------------------------------------------------------------------------


class MinHasher:
    """k random hash functions applied to batches of shingle sets at once.

    Two families, both universal for 32-bit shingles:

    - `"multiply-shift"` (default): h(x) = ((a x + b) mod 2^64) >> 32 with random 64-bit a (odd) and b
      (Dietzfelbinger 1996). The "mod 2^64" is free (uint64 arithmetic wraps), so it costs a multiply, an add and
      a shift per entry.
    - `"mod-prime"`: h(x) = (a x + b) mod p with p = 2^32 - 5 (Carter and Wegman 1979), the textbook form; an
      integer division per entry makes it about twice as slow in numpy.
    """

    def __init__(
        self, num_perm: int = 128, seed: int = 1, max_batch_shingles: int = 8192, scheme: str = "multiply-shift"
    ):
        if scheme not in ("multiply-shift", "mod-prime"):
            raise ValueError(f"scheme must be 'multiply-shift' or 'mod-prime', not {scheme!r}")
        rng = np.random.default_rng(seed)
        self.num_perm, self.scheme = num_perm, scheme
        if scheme == "mod-prime":
            p = int(MERSENNE_32)
            self.a = rng.integers(1, p, size=(num_perm, 1), dtype=np.uint64)
            self.b = rng.integers(0, p, size=(num_perm, 1), dtype=np.uint64)
        else:
            self.a = rng.integers(0, 2**64, size=(num_perm, 1), dtype=np.uint64) | np.uint64(1)
            self.b = rng.integers(0, 2**64, size=(num_perm, 1), dtype=np.uint64)
        self.max_batch_shingles = max_batch_shingles  # (k x shingles) temporary: 128 x 8192 x 8 B = 8 MB

    def signatures(self, shingle_sets: Sequence[np.ndarray]) -> np.ndarray:
        """A (documents x num_perm) uint32 signature matrix. An empty set gets the all-0xFFFFFFFF signature."""
        out = np.full((len(shingle_sets), self.num_perm), EMPTY_SIGNATURE_VALUE, dtype=np.uint64)
        start = 0
        while start < len(shingle_sets):
            # Greedily fill one batch up to max_batch_shingles (at least one document).
            stop, total = start, 0
            limit = self.max_batch_shingles
            while stop < len(shingle_sets) and (stop == start or total + len(shingle_sets[stop]) <= limit):
                total += len(shingle_sets[stop])
                stop += 1
            self._batch(shingle_sets[start:stop], out[start:stop])
            start = stop
        return out.astype(np.uint32)

    def _batch(self, sets: Sequence[np.ndarray], out: np.ndarray) -> None:
        lengths = np.array([len(s) for s in sets])
        nonempty = np.flatnonzero(lengths)
        if len(nonempty) == 0:
            return
        x = np.concatenate([sets[i] for i in nonempty]).astype(np.uint64)
        # All num_perm hash functions on all shingles of the batch, in place: one (num_perm x shingles) array,
        # sized to stay in the CPU cache (memory traffic, not arithmetic, dominates here).
        with np.errstate(over="ignore"):
            if self.scheme == "mod-prime":
                x %= MERSENNE_32
                hashed = np.multiply(self.a, x)
                hashed += self.b  # a, b, x < p < 2^32: a x + b < 2^64, no overflow
                np.remainder(hashed, MERSENNE_32, out=hashed)
            else:
                hashed = np.multiply(self.a, x)  # wraps mod 2^64 on purpose
                hashed += self.b
                hashed >>= np.uint64(32)
        offsets = np.concatenate([[0], np.cumsum(lengths[nonempty])[:-1]])
        out[nonempty] = np.minimum.reduceat(hashed, offsets, axis=1).T


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature entries: an unbiased estimate of J(A, B) with variance J(1-J)/k."""
    return float(np.mean(sig_a == sig_b))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle sets given as integer arrays."""
    a, b = np.unique(a), np.unique(b)
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


# --------------------------------------------------------------------------------------------------------------
# LSH banding
# --------------------------------------------------------------------------------------------------------------


def s_curve(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """P(candidate) = 1 - (1 - s^r)^b for two documents with Jaccard similarity s."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents x bands) uint64 keys: one hash of each band's r rows (equal rows give equal keys)."""
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"bands x rows = {bands * rows} exceeds the signature length {signatures.shape[1]}")
    rng = np.random.default_rng(12345)
    mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    with np.errstate(over="ignore"):
        keys = (sig * mult).sum(axis=2, dtype=np.uint64)
    return keys + np.arange(bands, dtype=np.uint64)  # different bands never collide on purpose


def lsh_candidates(signatures: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    """All pairs (i < j) that agree on at least one band, found by sorting each band's keys."""
    keys = band_keys(signatures, bands, rows)
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        col = keys[:, band]
        order = np.argsort(col, kind="stable")
        sorted_keys = col[order]
        # Boundaries of runs of equal keys: each run is one bucket.
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        ends = np.concatenate([starts[1:], [len(col)]])
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
            members = np.sort(order[s:e])
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    pairs.add((int(members[x]), int(members[y])))
    return pairs


def connected_components(n: int, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """Union-find over verified duplicate pairs; returns each document's component root (its smallest index)."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(n)])


@dataclass(frozen=True)
class NearDedupResult:
    keep: np.ndarray  # bool per document: the first document of each cluster is kept
    candidates: set[tuple[int, int]]
    duplicates: set[tuple[int, int]]  # verified pairs
    components: np.ndarray


def near_duplicates(
    shingle_sets: Sequence[np.ndarray],
    threshold: float = 0.8,
    num_perm: int = 128,
    bands: int = 20,
    rows: int = 6,
    verify: str = "exact",
    seed: int = 1,
    signatures: np.ndarray | None = None,
) -> NearDedupResult:
    """The batch near-dedup of the chapter: MinHash -> LSH candidates -> verify J >= threshold -> components.

    `verify="exact"` recomputes the true Jaccard of each candidate pair (no false positives);
    `verify="minhash"` uses the signature estimate (no shingles need to be kept).
    """
    if signatures is None:
        signatures = MinHasher(num_perm, seed).signatures(shingle_sets)
    candidates = lsh_candidates(signatures, bands, rows)
    if verify == "exact":
        dups = {(i, j) for i, j in candidates if jaccard(shingle_sets[i], shingle_sets[j]) >= threshold}
    elif verify == "minhash":
        dups = {(i, j) for i, j in candidates if estimated_jaccard(signatures[i], signatures[j]) >= threshold}
    else:
        raise ValueError(f"verify must be 'exact' or 'minhash', not {verify!r}")
    comps = connected_components(len(shingle_sets), dups)
    return NearDedupResult(comps == np.arange(len(comps)), candidates, dups, comps)


class StreamingNearDedup:
    """Near-dedup for the streaming pipeline: bounded state (band keys + signatures), first occurrence kept.

    Every document, kept or not, is indexed, so a chain A~B~C drops B and C as connected components would.
    Candidates are verified with the MinHash estimate, since the shingles of past documents are not stored.
    """

    def __init__(self, threshold: float = 0.8, bands: int = 20, rows: int = 6):
        self.threshold, self.bands, self.rows = threshold, bands, rows
        self.tables: dict[int, list[int]] = defaultdict(list)
        self.sigs: list[np.ndarray] = []

    def add(self, signature: np.ndarray) -> int | None:
        """Index `signature`; return the index of an earlier near-duplicate, or `None` if it is new."""
        keys = band_keys(signature[None, :], self.bands, self.rows)[0]
        match = None
        idx = len(self.sigs)
        for key in keys.tolist():
            bucket = self.tables[key]
            if match is None:
                for j in bucket:
                    if estimated_jaccard(self.sigs[j], signature) >= self.threshold:
                        match = j
                        break
            bucket.append(idx)
        self.sigs.append(signature)
        return match
