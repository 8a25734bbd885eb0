"""Binary token shards: the training-ready form of the corpus, readable with a plain `np.memmap`.

File layout (little-endian), one file per shard:

====== ===== ==========================================================================
offset bytes field
====== ===== ==========================================================================
0      8     magic `b"LFSTOKS\\0"`
8      4     format version (uint32, currently 1)
12     4     bytes per token (uint32): 2 = `uint16` when the vocabulary has at most 65536 ids, else 4 = `uint32`
16     8     number of tokens (uint64)
24     8     number of documents that start in this shard (uint64)
32     4     vocabulary size (uint32)
36     4     end-of-text id (uint32), which starts every document
40     16    tokenizer fingerprint (16 ASCII hex digits)
56     4     checksum kind (uint32): 1 = SHA-256 of the token bytes; 0 = none (shards written before it existed)
60     4     zeros
64     32    the checksum (SHA-256 digest of bytes 256 to the end)
96     160   zeros (room for later fields; the tokens start at byte 256, an aligned offset)
256    ...   the tokens
====== ===== ==========================================================================

`np.memmap(path, dtype=np.uint16, mode="r", offset=256)` reads the tokens as nanoGPT reads its `.bin` files.

The checksum lives in bytes the first layout reserved (so the version stays 1 and older shards still read):
`open_shard` recomputes it, and checks that every id is inside the vocabulary, before the tokens are used.
Flipped bytes that stay inside the vocabulary would otherwise train silently on garbage, and ids outside it would
fail deep inside the embedding lookup.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llm_from_scratch.utils import atomic_path

MAGIC = b"LFSTOKS\0"
VERSION = 1
HEADER_BYTES = 256
_HEADER = struct.Struct("<8sIIQQII16sI4x32s160x")
CHECKSUM_SHA256 = 1
_CHUNK = 1 << 24  # tokens per read when verifying: bounded memory for shards of any size
assert _HEADER.size == HEADER_BYTES


@dataclass(frozen=True)
class ShardHeader:
    version: int
    itemsize: int
    n_tokens: int
    n_docs: int
    vocab_size: int
    eot_id: int
    fingerprint: str
    checksum_kind: int = 0
    checksum: bytes = b""

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.itemsize == 2 else np.uint32)


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id: uint16 up to 65536 ids, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def write_shard(path: str | Path, tokens: np.ndarray, vocab_size: int, eot_id: int, fingerprint: str, n_docs: int):
    """Write one shard atomically (a reader never sees a half-written file)."""
    dtype = token_dtype(vocab_size)
    tokens = np.asarray(tokens)
    if tokens.size and int(tokens.max()) >= vocab_size:
        raise ValueError(f"{path}: token id {int(tokens.max())} does not fit a vocabulary of {vocab_size}")
    data = tokens.astype(dtype.newbyteorder("<"), copy=False).tobytes()
    fp = fingerprint.encode().ljust(16)[:16]
    digest = hashlib.sha256(data).digest()
    header = _HEADER.pack(MAGIC, VERSION, dtype.itemsize, tokens.size, n_docs, vocab_size, eot_id, fp, 1, digest)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        f.write(data)
    return Path(path)


def read_header(path: str | Path) -> ShardHeader:
    """Parse and check a shard header; any problem is one `ValueError` that names the file and the mismatch."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"shard {path} does not exist; build shards with `llm-from-scratch tokenize shard`")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ValueError(f"{path}: truncated shard, {size} bytes is shorter than the {HEADER_BYTES}-byte header")
    with open(path, "rb") as f:
        fields = _HEADER.unpack(f.read(HEADER_BYTES))
    magic, version, itemsize, n_tokens, n_docs, vocab_size, eot_id, fp, kind, digest = fields
    if magic != MAGIC:
        raise ValueError(f"{path}: not a token shard (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise ValueError(f"{path}: shard format version {version}, this package reads version {VERSION}; rebuild it")
    if kind not in (0, CHECKSUM_SHA256):
        raise ValueError(f"{path}: corrupt header, unknown checksum kind {kind}; rebuild the shard")
    if itemsize not in (2, 4):
        raise ValueError(f"{path}: corrupt header, {itemsize} bytes per token (expected 2 or 4)")
    expected = HEADER_BYTES + n_tokens * itemsize
    if size != expected:
        raise ValueError(
            f"{path}: truncated or corrupt shard, header announces {n_tokens} tokens ({expected} bytes) "
            f"but the file has {size} bytes; rebuild it"
        )
    try:
        fingerprint = fp.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: corrupt header, the tokenizer fingerprint is not ASCII; rebuild it") from None
    return ShardHeader(version, itemsize, n_tokens, n_docs, vocab_size, eot_id, fingerprint, kind, digest)


def verify_tokens(path: str | Path, header: ShardHeader, tokens: np.ndarray) -> None:
    """Recompute the checksum of `tokens` and check every id is below the vocabulary size, in bounded chunks;
    one `ValueError` naming the file otherwise. Shards without a checksum (kind 0) get the range check only."""
    h = hashlib.sha256()
    for start in range(0, len(tokens), _CHUNK):
        chunk = np.asarray(tokens[start : start + _CHUNK])
        if header.checksum_kind == CHECKSUM_SHA256:
            h.update(chunk.tobytes())
        if chunk.size and int(chunk.max()) >= header.vocab_size:
            at = start + int(np.argmax(chunk >= header.vocab_size))
            raise ValueError(
                f"{path}: token id {int(tokens[at])} at position {at} is outside the vocabulary of "
                f"{header.vocab_size}; the shard is corrupt, rebuild it"
            )
    if header.checksum_kind == CHECKSUM_SHA256 and h.digest() != header.checksum:
        raise ValueError(
            f"{path}: the SHA-256 of the tokens does not match the header (the file was damaged after it was "
            "written); rebuild the shards"
        )


def open_shard(
    path: str | Path, fingerprint: str | None = None, vocab_size: int | None = None, verify: bool = True
) -> tuple[ShardHeader, np.memmap]:
    """Header and read-only memory map of the tokens; checks the tokenizer when `fingerprint` / `vocab_size`
    are given (the tokenizer that will decode, or the model that will embed, these ids), and with `verify` the
    checksum and the id range (one pass over the file)."""
    header = read_header(path)
    if fingerprint is not None and header.fingerprint != fingerprint:
        raise ValueError(
            f"{path}: written by tokenizer {header.fingerprint}, but the tokenizer in use is {fingerprint}; "
            "rebuild the shards with this tokenizer"
        )
    if vocab_size is not None and header.vocab_size != vocab_size:
        raise ValueError(f"{path}: vocabulary size {header.vocab_size} does not match the expected {vocab_size}")
    tokens = np.memmap(path, dtype=header.dtype, mode="r", offset=HEADER_BYTES, shape=(header.n_tokens,))
    if verify:
        verify_tokens(path, header, tokens)
    return header, tokens


def check_vocab(tokenizer, model_vocab_size: int, where: str = "model") -> None:
    """Raise if `tokenizer` produces ids that a model with `model_vocab_size` embeddings cannot embed.

    A model may have more rows than the tokenizer has ids (padding to a multiple of 64 is common), never fewer.
    """
    if tokenizer.vocab_size > model_vocab_size:
        raise ValueError(
            f"{where}: the model embeds {model_vocab_size} ids but tokenizer {tokenizer.fingerprint} has "
            f"{tokenizer.vocab_size}; build the model with vocab_size >= {tokenizer.vocab_size}"
        )


# -------------------------------------------------------------------------------------------------- the shard set
@dataclass
class ShardSet:
    """The train and validation shards of one corpus under one tokenizer, as listed in `shards.json`."""

    directory: Path
    train: list[Path]
    val: list[Path]
    vocab_size: int
    eot_id: int
    fingerprint: str
    _maps: dict = field(default_factory=dict, repr=False)

    def tokens(self, split: str) -> list[np.memmap]:
        """Memory maps of the shards of `split` (`"train"` or `"val"`), opened and checked once."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        if split not in self._maps:
            paths = self.train if split == "train" else self.val
            self._maps[split] = [open_shard(p, self.fingerprint, self.vocab_size)[1] for p in paths]
        return self._maps[split]

    def n_tokens(self, split: str) -> int:
        return sum(len(t) for t in self.tokens(split))

    def stream(self, split: str) -> np.ndarray:
        """All tokens of `split` as one array (a copy in memory: fine for the book's corpus, not for terabytes)."""
        return np.concatenate([np.asarray(t) for t in self.tokens(split)])

    def bytes_per_token(self, split: str = "val") -> float:
        """UTF-8 bytes of document text per token of `split` (each document's `<|endoftext|>` counts as a
        token): multiply a loss in nats per token by `1 / (ln 2 * bytes_per_token)` to get bits per byte."""
        meta = json.loads((self.directory / "shards.json").read_text())
        return meta["text_bytes"][split] / self.n_tokens(split)

    def check_tokenizer(self, tokenizer) -> None:
        if tokenizer.fingerprint != self.fingerprint or tokenizer.vocab_size != self.vocab_size:
            raise ValueError(
                f"{self.directory / 'shards.json'}: shards were written by tokenizer {self.fingerprint} "
                f"(vocab {self.vocab_size}), not by {tokenizer.fingerprint} (vocab {tokenizer.vocab_size})"
            )

    @classmethod
    def load(cls, directory: str | Path) -> ShardSet:
        directory = Path(directory)
        manifest = directory / "shards.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} does not exist: the shards were never built or the build was cut off")
        try:
            meta = json.loads(manifest.read_text())
            fields = [meta[k] for k in ("train", "val", "vocab_size", "eot_id", "fingerprint")]
        except json.JSONDecodeError as err:
            raise ValueError(f"{manifest}: truncated or invalid JSON ({err.msg}); rebuild the shards") from None
        except (KeyError, TypeError) as err:
            raise ValueError(f"{manifest}: field {err} is missing; rebuild the shards") from None
        del fields
        return cls(
            directory,
            [directory / p for p in meta["train"]],
            [directory / p for p in meta["val"]],
            meta["vocab_size"],
            meta["eot_id"],
            meta["fingerprint"],
        )


# ------------------------------------------------------------------------------------------------------- writing
def doc_hash(text: str) -> int:
    """A stable 64-bit hash of a document's text: it decides the split, so identical copies never straddle it."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")


def validation_threshold(hashes: list[int], val_fraction: float) -> int:
    """Documents whose hash is at most this value are validation: the `round(fraction * n)` smallest hashes
    (Python's `round`, halves to even; at least one document, never all of them), so a small corpus still
    gets a validation split."""
    if not hashes or val_fraction <= 0:
        return -1
    n_val = min(max(1, round(val_fraction * len(hashes))), len(hashes) - 1)
    return sorted(hashes)[n_val - 1] if n_val > 0 else -1


_WORKER_TOKENIZER = None


def _init_worker(tokenizer_path: str) -> None:
    global _WORKER_TOKENIZER
    from llm_from_scratch.tokenizer.build import load_tokenizer

    _WORKER_TOKENIZER = load_tokenizer(tokenizer_path)


def _encode_doc(text: str) -> np.ndarray:
    return np.asarray(_WORKER_TOKENIZER.encode(text), dtype=np.uint32)


class _ShardWriter:
    """Fills fixed-size buffers of one split and writes a shard each time one is full."""

    def __init__(self, directory: Path, split: str, shard_tokens: int, tokenizer):
        self.directory, self.split, self.shard_tokens, self.tok = directory, split, shard_tokens, tokenizer
        self.buf = np.empty(shard_tokens, dtype=token_dtype(tokenizer.vocab_size))
        self.fill, self.docs, self.paths = 0, 0, []

    def add(self, tokens: np.ndarray) -> None:
        self.docs += 1  # the document starts in the shard being filled now
        while tokens.size:
            take = min(tokens.size, self.shard_tokens - self.fill)
            self.buf[self.fill : self.fill + take] = tokens[:take]
            self.fill, tokens = self.fill + take, tokens[take:]
            if self.fill == self.shard_tokens:
                self.flush()

    def flush(self) -> None:
        if self.fill == 0:
            return
        path = self.directory / f"{self.split}_{len(self.paths):06d}.bin"
        write_shard(path, self.buf[: self.fill], self.tok.vocab_size, self.tok.eot_id, self.tok.fingerprint, self.docs)
        self.paths.append(path)
        self.fill, self.docs = 0, 0


def write_shards(
    texts: Callable[[], Iterable[str]] | Collection[str],
    tokenizer,
    tokenizer_path: str | Path,
    directory: str | Path,
    shard_tokens: int = 1 << 20,
    val_fraction: float = 0.05,
    num_workers: int = 2,
    progress: bool = True,
) -> ShardSet:
    """Tokenize documents into fixed-size train/validation shards, streaming, with `num_workers` processes.

    `texts` is read twice (a collection, or a function returning a fresh iterator): once to hash every document
    and fix the split, once to encode. Every document is preceded by `<|endoftext|>`, so the model always sees
    where a document starts. Results arrive in corpus order whatever the number of workers, so the shards are
    byte-identical from run to run. `shards.json` is written last: its presence means the set is complete.
    """
    from tqdm import tqdm

    reiterate = texts if callable(texts) else (lambda: texts)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hashes = [doc_hash(t) for t in reiterate()]
    threshold = validation_threshold(hashes, val_fraction)
    writers = {s: _ShardWriter(directory, s, shard_tokens, tokenizer) for s in ("train", "val")}
    eot = np.array([tokenizer.eot_id], dtype=np.uint32)

    def encoded():
        if num_workers <= 1:
            for text in reiterate():
                yield np.asarray(tokenizer.encode(text), dtype=np.uint32)
            return
        import multiprocessing as mp

        ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
        with ctx.Pool(num_workers, initializer=_init_worker, initargs=(str(tokenizer_path),)) as pool:
            yield from pool.imap(_encode_doc, reiterate(), chunksize=1)

    n_bytes = {"train": 0, "val": 0}
    bar = tqdm(total=len(hashes), desc="shards", unit="doc", disable=not progress)
    for h, text, tokens in zip(hashes, reiterate(), encoded(), strict=True):
        split = "val" if h <= threshold else "train"
        writers[split].add(np.concatenate([eot, tokens]))
        n_bytes[split] += len(text.encode("utf-8", "surrogatepass"))
        bar.update()
    bar.close()
    for w in writers.values():
        w.flush()
    meta = {
        "format": "llm-from-scratch-shards",
        "version": VERSION,
        "fingerprint": tokenizer.fingerprint,
        "vocab_size": tokenizer.vocab_size,
        "eot_id": tokenizer.eot_id,
        "shard_tokens": shard_tokens,
        "val_fraction": val_fraction,
        "documents": {"train": sum(h > threshold for h in hashes), "val": sum(h <= threshold for h in hashes)},
        "text_bytes": n_bytes,
        "train": [p.name for p in writers["train"].paths],
        "val": [p.name for p in writers["val"].paths],
    }
    with atomic_path(directory / "shards.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return ShardSet.load(directory)
