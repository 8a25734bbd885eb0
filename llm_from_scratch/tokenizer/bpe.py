"""Byte-level BPE from scratch: training with incremental pair counts, encoding with a per-word cache.

Token ids: the special tokens first (`<|endoftext|>` is 0), then the 256 single bytes, then one id per merge in the
order the merges were learned. A vocabulary of size `V` therefore holds `V - n_special - 256` merges, and the
first `k` merges of a long training run are exactly the merges of a shorter one (BPE is greedy).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from llm_from_scratch.tokenizer.pretokenize import PATTERNS, compiled, resolve_pattern, special_splitter
from llm_from_scratch.utils import atomic_path

SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
FORMAT = "llm-from-scratch-bpe"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------------------- training
def count_words(texts: Iterable[str], pattern: str = "gpt4", special_tokens: Iterable[str] = SPECIAL_TOKENS) -> Counter:
    """Unique pre-tokenised words (as UTF-8 bytes) with their counts; special tokens are cut out first, so they are
    never part of a word and can never be merged with the text around them."""
    check_pattern(pattern)
    regex = compiled(pattern)
    splitter = special_splitter(tuple(special_tokens))
    counts: Counter = Counter()
    for text in texts:
        pieces = splitter.split(text)[::2] if splitter else [text]  # even pieces: text between special tokens
        for piece in pieces:
            counts.update(regex.findall(piece))
    return Counter({w.encode("utf-8", "surrogatepass"): c for w, c in counts.items()})


class _Greater:
    """Heap key that inverts the order of byte pairs: `heapq` pops the smallest item, and among pairs of equal
    count we want the lexicographically *greatest* pair first."""

    __slots__ = ("pair",)

    def __init__(self, pair: tuple[bytes, bytes]):
        self.pair = pair

    def __lt__(self, other: _Greater) -> bool:
        return self.pair > other.pair


def train_bpe(
    word_counts: dict[bytes, int],
    vocab_size: int,
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    progress: bool = False,
) -> tuple[dict[int, bytes], list[tuple[int, int]]]:
    """Learn `vocab_size - n_special - 256` merges from unique words with counts.

    Each step merges the most frequent adjacent pair; ties go to the lexicographically greatest pair of byte strings.
    Instead of recounting all pairs after each merge (`O(corpus)` per merge), only the words that contain the
    merged pair are touched: `where[pair]` indexes them, and their pair counts are updated by the difference
    between the word before and after the merge. A max-heap with lazy deletion finds the next best pair; entries whose
    count is out of date are skipped when popped.
    """
    specials = list(dict.fromkeys(special_tokens))
    vocab: dict[int, bytes] = {i: s.encode("utf-8") for i, s in enumerate(specials)}
    offset = len(specials)
    vocab.update({offset + b: bytes([b]) for b in range(256)})
    n_merges = vocab_size - len(vocab)
    if n_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(vocab)} special and byte tokens")

    words = [[offset + b for b in w] for w in word_counts]
    counts = list(word_counts.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, (word, c) in enumerate(zip(words, counts, strict=False)):
        for pair in itertools.pairwise(word):
            pair_counts[pair] += c
            where[pair].add(i)
    heap = [(-c, _Greater((vocab[p[0]], vocab[p[1]])), p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    from tqdm import tqdm

    bar = tqdm(total=n_merges, desc="merges", unit="merge", disable=not progress, mininterval=0.5)
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges and heap:
        neg, _, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg or neg == 0:
            continue  # stale entry: the count changed after it was pushed
        a, b = pair
        new_id = len(vocab)
        vocab[new_id] = vocab[a] + vocab[b]
        merges.append(pair)
        delta: dict[tuple[int, int], int] = defaultdict(int)
        for i in where.pop(pair):
            word, c = words[i], counts[i]
            merged, j, n = [], 0, len(word)
            while j < n:
                if j < n - 1 and word[j] == a and word[j + 1] == b:
                    merged.append(new_id)
                    j += 2
                else:
                    merged.append(word[j])
                    j += 1
            if len(merged) == n:
                continue  # a stale index entry: this word lost the pair in an earlier merge
            for p in itertools.pairwise(word):
                delta[p] -= c
            for p in itertools.pairwise(merged):
                delta[p] += c
                if new_id in p:
                    where[p].add(i)
            words[i] = merged
        for p, d in delta.items():
            if d:
                c = pair_counts[p] + d
                pair_counts[p] = c
                if c > 0:
                    heapq.heappush(heap, (-c, _Greater((vocab[p[0]], vocab[p[1]])), p))
        pair_counts.pop(pair, None)
        bar.update()
    bar.close()
    return vocab, merges


# ------------------------------------------------------------------------------------------------ GPT-2 file helpers
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 bytes to printable characters, used in `vocab.json` and `merges.txt`
    so that every token is a readable string without spaces or control characters (space becomes `Ġ`)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=False))


_B2U = bytes_to_unicode()
_U2B = {u: b for b, u in _B2U.items()}


def _to_printable(token: bytes) -> str:
    return "".join(_B2U[b] for b in token)


def _from_printable(text: str) -> bytes:
    return bytes(_U2B[ch] for ch in text)


def read_json_object(path: Path, what: str, fix: str) -> dict:
    """The JSON object in `path`; a missing, unreadable, truncated or repeated-key file is one error naming it."""

    def no_repeats(pairs: list) -> dict:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            repeated = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"{path}: key {repeated!r} appears twice; the file was edited or assembled wrongly")
        return dict(pairs)

    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist; {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_repeats)
    except PermissionError:
        raise PermissionError(f"{what} {path} cannot be read (permission denied); fix its permissions") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, so not a {what}; {fix}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: truncated or invalid JSON ({err.msg} at line {err.lineno}); {fix}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON object was expected, not a {type(data).__name__}; {fix}")
    return data


def _int_ids(table: dict, where: str | Path, field: str) -> dict[str, int]:
    bad = [(t, i) for t, i in table.items() if not isinstance(i, int) or isinstance(i, bool) or i < 0]
    if bad:
        raise ValueError(f"{where}: {field} entry {bad[0][0]!r} has id {bad[0][1]!r}, not a non-negative integer")
    return dict(table)


_PATTERN_PROBE = "Hello, world! It's 2024:\n\tnaïve café — 3.14159 x\r\n  <tag> ünïcödé 日本語 done.  "


def check_pattern(pattern: str, where: str = "tokenizer") -> None:
    """A pre-tokenisation pattern must be a known name or a regex that cuts text into pieces covering all of it.

    A bare word that is not a known name (`"gpt5"`) is a typo, not a regex: taken literally it matches only
    itself, and encoding would silently drop every other character (45 KB of text became 40 tokens)."""
    import regex

    if pattern in PATTERNS:
        return
    if regex.fullmatch(r"[A-Za-z0-9_.-]+", pattern):
        raise ValueError(f"{where}: unknown pattern name {pattern!r}; use one of {sorted(PATTERNS)} or a regex")
    try:
        pieces = compiled(pattern).findall(_PATTERN_PROBE)
    except regex.error as err:
        raise ValueError(f"{where}: pattern {pattern!r} is not a valid regular expression ({err})") from None
    if not all(isinstance(p, str) for p in pieces) or "".join(pieces) != _PATTERN_PROBE:
        raise ValueError(
            f"{where}: pattern {pattern!r} does not cover all of the text (characters it does not match would be "
            f"dropped); use one of {sorted(PATTERNS)} or a regex whose matches add up to the text"
        )


# ---------------------------------------------------------------------------------------------------------- tokenizer
class BPETokenizer:
    """A byte-level BPE tokenizer: `encode(str) -> list[int]`, `decode(list[int]) -> str`.

    `decode(encode(s)) == s` for every Python string, lone surrogates included: text becomes bytes with
    `surrogatepass`, and every byte has its own token, so nothing is ever unknown.
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: list[tuple[int, int]],
        special_tokens: dict[str, int],
        pattern: str = "gpt4",
    ):
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = dict(special_tokens)
        self.pattern = pattern
        check_pattern(pattern)
        self._regex = compiled(pattern)
        self._splitter = special_splitter(tuple(self.special_tokens))
        ids_of = {tok: i for i, tok in self.vocab.items() if i not in self.special_tokens.values()}
        self._byte_ids = [ids_of[bytes([b])] for b in range(256)]
        # rank of a pair = when it was learned; encoding applies the lowest-ranked pair first, as training did
        self._ranks = {pair: (r, ids_of[self.vocab[pair[0]] + self.vocab[pair[1]]]) for r, pair in enumerate(merges)}
        self._cache: dict[str, tuple[int, ...]] = {}
        self._special_ids = set(self.special_tokens.values())

    # --- the shared interface
    @property
    def vocab_size(self) -> int:
        return max(self.vocab) + 1

    @property
    def eot_id(self) -> int:
        return self.special_tokens["<|endoftext|>"]

    @property
    def fingerprint(self) -> str:
        """A hash of everything that decides the ids (pattern, special tokens, vocabulary, merges)."""
        blob = json.dumps(
            [
                resolve_pattern(self.pattern),
                sorted(self.special_tokens.items()),
                sorted((i, t.hex()) for i, t in self.vocab.items()),
                self.merges,
            ],
        ).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special tokens written in the text become their reserved ids."""
        ids: list[int] = []
        if self._splitter is None:
            self._encode_ordinary(text, ids)
            return ids
        for k, piece in enumerate(self._splitter.split(text)):
            if k % 2:
                ids.append(self.special_tokens[piece])
            elif piece:
                self._encode_ordinary(piece, ids)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`. Byte sequences that are not valid UTF-8 (e.g. a cut-off character) become U+FFFD."""
        data = b"".join(self.vocab[i] for i in ids)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def encode_iterable(self, chunks: Iterable[str]) -> Iterator[int]:
        """Stream the ids of the concatenation of `chunks` (e.g. an open file) in bounded memory.

        The tail of the buffer is held back until the next chunk arrives: the last pre-token could still grow
        (`"hel" + "lo"`), and the end of the buffer could be the start of a special token (`"<|endof"`).
        The ids are exactly those of `encode("".join(chunks))`.
        """
        buf = ""
        for chunk in chunks:
            buf += chunk
            cut = self._safe_cut(buf)
            if cut:
                yield from self.encode(buf[:cut])
                buf = buf[cut:]
        if buf:
            yield from self.encode(buf)

    def _safe_cut(self, buf: str) -> int:
        limit = len(buf)
        for special in self.special_tokens:  # a special token may be arriving in pieces
            for k in range(min(len(special) - 1, len(buf)), 0, -1):
                if special.startswith(buf[-k:]):
                    limit = min(limit, len(buf) - k)
                    break
        head = buf[:limit]
        start = 0
        if self._splitter is not None:
            last = None
            for last in self._splitter.finditer(head):  # noqa: B007 - we want the last special token
                pass
            start = last.end() if last else 0
        # the last two pre-tokens may still change when text is appended (whitespace runs look ahead one character)
        matches = [m.start() for m in self._regex.finditer(head, start)]
        return matches[-2] if len(matches) >= 2 else start

    # --- the algorithm
    def _encode_ordinary(self, text: str, out: list[int]) -> None:
        cache = self._cache
        for word in self._regex.findall(text):
            ids = cache.get(word)
            if ids is None:
                ids = self._encode_word(word)
                if len(cache) < 500_000:  # bounded: a stream of unique words must not exhaust memory
                    cache[word] = ids
            out.extend(ids)

    def _encode_word(self, word: str) -> tuple[int, ...]:
        byte_ids = self._byte_ids
        ids = [byte_ids[b] for b in word.encode("utf-8", "surrogatepass")]
        ranks = self._ranks
        while len(ids) > 1:
            best = min((ranks.get(p, (1 << 62, 0)), k) for k, p in enumerate(itertools.pairwise(ids)))
            (rank, new_id), _ = best
            if rank == 1 << 62:
                break
            a, b = ids[best[1]], ids[best[1] + 1]
            merged, j = [], 0
            while j < len(ids):
                if j < len(ids) - 1 and ids[j] == a and ids[j + 1] == b:
                    merged.append(new_id)
                    j += 2
                else:
                    merged.append(ids[j])
                    j += 1
            ids = merged
        return tuple(ids)

    def truncated(self, vocab_size: int) -> BPETokenizer:
        """The tokenizer a shorter training run would have produced: BPE is greedy, so the first `k` merges of
        a run to 8192 are exactly the merges of a run to `vocab_size`. One training gives every smaller size."""
        n_base = len(self.vocab) - len(self.merges)
        if not n_base <= vocab_size <= len(self.vocab):
            raise ValueError(f"vocab_size must be between {n_base} and {len(self.vocab)}, not {vocab_size}")
        keep = vocab_size - n_base
        kept = {i: t for i, t in self.vocab.items() if i < vocab_size or i in self._special_ids}
        return BPETokenizer(kept, self.merges[:keep], self.special_tokens, self.pattern)

    # --- files
    def save(self, path: str | Path) -> Path:
        """Write the documented JSON format: `{"format", "version", "pattern", "special_tokens", "vocab",
        "merges"}` where `vocab` maps GPT-2 printable token strings to ids and `merges` lists `"a b"`."""
        path = Path(path)
        data = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "vocab": {
                (_to_printable(t) if i not in self._special_ids else t.decode()): i for i, t in self.vocab.items()
            },
            "merges": [f"{_to_printable(self.vocab[a])} {_to_printable(self.vocab[b])}" for a, b in self.merges],
        }
        with atomic_path(path) as tmp:  # a killed or failing writer leaves the previous tokenizer, or none
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=0), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read the JSON format written by `save`, checked field by field: a file that is truncated, lacks a
        field, names an unknown pattern, has a merge of unknown tokens or two tokens with one id is one
        `ValueError` that names the file and what is wrong (never a `KeyError` from deep inside)."""
        path = Path(path)
        data = read_json_object(path, "tokenizer file", "train one with `llm-from-scratch tokenize train`")
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: format {data.get('format')!r} version {data.get('version')!r} is not "
                f"{FORMAT!r} version {FORMAT_VERSION}; retrain the tokenizer with this version of the package"
            )
        for key, kind in (("pattern", str), ("special_tokens", dict), ("vocab", dict), ("merges", list)):
            if not isinstance(data.get(key), kind):
                found = "missing" if key not in data else f"a {type(data[key]).__name__}"
                raise ValueError(f"{path}: field {key!r} is {found}, expected a {kind.__name__}; retrain the tokenizer")
        specials = _int_ids(data["special_tokens"], path, "special_tokens")
        return cls._from_tables(data["vocab"], data["merges"], specials, data["pattern"], where=str(path))

    def save_gpt2(self, directory: str | Path) -> tuple[Path, Path]:
        """Write `vocab.json` and `merges.txt` as GPT-2 and Hugging Face `tokenizers` read them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        data = json.loads(self.save(directory / "tokenizer.json").read_text(encoding="utf-8"))
        vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
        vocab_path.write_text(json.dumps(data["vocab"], ensure_ascii=False), encoding="utf-8")
        merges_path.write_text("#version: 0.2\n" + "\n".join(data["merges"]) + "\n", encoding="utf-8")
        return vocab_path, merges_path

    @classmethod
    def from_gpt2_files(
        cls, vocab_path: str | Path, merges_path: str | Path, pattern: str = "gpt2", special_tokens: Iterable[str] = ()
    ) -> BPETokenizer:
        """Load a GPT-2-style `vocab.json` + `merges.txt` (e.g. the original GPT-2 files: pattern `gpt2`).

        Vocabulary entries that are not byte-level strings (`<|endoftext|>`) are special tokens.
        """
        vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        lines = Path(merges_path).read_text(encoding="utf-8").splitlines()
        merges = [line for line in lines if line and not line.startswith("#version")]
        specials = {s: vocab[s] for s in special_tokens}
        specials.update({t: i for t, i in vocab.items() if any(ch not in _U2B for ch in t)})
        return cls._from_tables(vocab, merges, specials, pattern)

    @classmethod
    def _from_tables(
        cls, vocab: dict[str, int], merges: list[str], specials: dict[str, int], pattern: str, where: str = "tokenizer"
    ) -> BPETokenizer:
        check_pattern(pattern, where)  # before the tables: a wrong pattern is the likelier mistake to report
        vocab = _int_ids(vocab, where, "vocab")
        by_id: dict[int, str] = {}
        for token, i in vocab.items():
            if i in by_id:
                raise ValueError(f"{where}: id {i} is given to two tokens, {by_id[i]!r} and {token!r}")
            by_id[i] = token
        for s, i in specials.items():
            if vocab.get(s, i) != i or by_id.get(i, s) != s:
                raise ValueError(f"{where}: special token {s!r} has id {i}, but the vocabulary gives that id otherwise")
        table: dict[int, bytes] = {}
        for t, i in vocab.items():
            if t in specials:
                table[i] = t.encode()
                continue
            try:
                table[i] = _from_printable(t)
            except KeyError:
                raise ValueError(f"{where}: vocabulary entry {t!r} is not a byte-level token string") from None
        table.update({i: s.encode() for s, i in specials.items()})
        ids_of = {b: i for i, b in table.items() if i not in specials.values()}
        missing = [b for b in range(256) if bytes([b]) not in ids_of]
        if missing:
            raise ValueError(
                f"{where}: the vocabulary lacks {len(missing)} of the 256 single bytes (e.g. {missing[0]})"
            )
        pairs = []
        for k, line in enumerate(merges):
            parts = line.split(" ") if isinstance(line, str) else []
            try:
                left, right = (_from_printable(p) for p in parts) if len(parts) == 2 else (None, None)
            except KeyError:
                left = right = None
            if left not in ids_of or right not in ids_of or left + right not in ids_of:
                raise ValueError(
                    f"{where}: merge #{k} {line!r} joins tokens that are not in the vocabulary (or makes one that is "
                    "not); the merges and the vocabulary come from different tokenizers"
                )
            pairs.append((ids_of[left], ids_of[right]))
        return cls(table, pairs, specials, pattern)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, pattern={self.pattern!r}, fingerprint={self.fingerprint})"


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    pattern: str = "gpt4",
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    progress: bool = False,
) -> BPETokenizer:
    """Pre-tokenise `texts`, learn the merges, and return the tokenizer (with progress bars if asked)."""
    from tqdm import tqdm

    specials = list(dict.fromkeys(special_tokens))
    texts = tqdm(texts, desc="pre-tokenise", unit="doc", disable=not progress)
    vocab, merges = train_bpe(count_words(texts, pattern, specials), vocab_size, specials, progress)
    return BPETokenizer(vocab, merges, {s: i for i, s in enumerate(specials)}, pattern)
