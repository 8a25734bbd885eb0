"""Shard format: plain memmap readability, clear errors for bad files, split by document, deterministic writing."""

import json

import numpy as np
import pytest

from llm_from_scratch.tokenizer.shards import (
    HEADER_BYTES,
    ShardSet,
    check_vocab,
    open_shard,
    read_header,
    validation_threshold,
    write_shard,
    write_shards,
)


@pytest.fixture()
def shard(tmp_path):
    tokens = np.arange(1000) % 600
    return write_shard(tmp_path / "s.bin", tokens, vocab_size=600, eot_id=0, fingerprint="0123456789abcdef", n_docs=3)


def test_plain_memmap_reads_tokens(shard):
    assert np.array_equal(np.memmap(shard, dtype=np.uint16, mode="r", offset=HEADER_BYTES), np.arange(1000) % 600)
    header, _tokens = open_shard(shard, fingerprint="0123456789abcdef", vocab_size=600)
    assert (header.n_tokens, header.n_docs, header.itemsize, header.eot_id) == (1000, 3, 2, 0)


def test_large_vocab_uses_uint32(tmp_path):
    path = write_shard(tmp_path / "big.bin", [70_000, 1], vocab_size=100_000, eot_id=0, fingerprint="f" * 16, n_docs=1)
    header, tokens = open_shard(path)
    assert header.itemsize == 4 and tokens.tolist() == [70_000, 1]


def test_token_outside_vocab_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="does not fit"):
        write_shard(tmp_path / "x.bin", [5, 700], vocab_size=600, eot_id=0, fingerprint="f" * 16, n_docs=1)


def corrupt(path, offset, data):
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def test_wrong_magic(shard):
    corrupt(shard, 0, b"NOTASHRD")
    with pytest.raises(ValueError, match=r"s\.bin: not a token shard"):
        read_header(shard)


def test_wrong_version(shard):
    corrupt(shard, 8, (7).to_bytes(4, "little"))
    with pytest.raises(ValueError, match=r"s\.bin: shard format version 7"):
        read_header(shard)


def test_truncated(shard):
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"s\.bin: truncated.*1000 tokens"):
        read_header(shard)
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"s\.bin: truncated shard, 100 bytes"):
        read_header(shard)


def test_wrong_fingerprint_and_vocab(shard):
    with pytest.raises(ValueError, match=r"s\.bin: written by tokenizer 0123456789abcdef.*ffffffffffffffff"):
        open_shard(shard, fingerprint="f" * 16)
    with pytest.raises(ValueError, match=r"s\.bin: vocabulary size 600 does not match the expected 8192"):
        open_shard(shard, vocab_size=8192)


def test_tokenizer_larger_than_model_is_rejected(small_bpe):
    check_vocab(small_bpe, 640)  # padding the embedding is fine
    with pytest.raises(ValueError, match=r"model embeds 512 ids but tokenizer .* has 600"):
        check_vocab(small_bpe, 512)


def test_validation_threshold_small_corpora():
    assert validation_threshold([5], 0.5) == -1  # one document: all of it trains
    assert validation_threshold([9, 3, 7], 0.01) == 3  # at least one validation document
    assert validation_threshold([9, 3, 7], 0.99) == 7  # never all of them


@pytest.fixture(scope="module")
def shard_dirs(tmp_path_factory, small_bpe, plays):
    docs = [p[i : i + 20_000] for p in plays for i in range(0, len(p), 20_000)] + [plays[0][:20_000]]  # a duplicate
    root = tmp_path_factory.mktemp("shards")
    path = small_bpe.save(root / "tok.json")
    one = write_shards(docs, small_bpe, path, root / "one", 10_000, 0.2, num_workers=1, progress=False)
    two = write_shards(docs, small_bpe, path, root / "two", 10_000, 0.2, num_workers=2, progress=False)
    return docs, one, two


def test_multiprocess_shards_are_byte_identical(shard_dirs):
    _, one, two = shard_dirs
    assert [p.name for p in one.train + one.val] == [p.name for p in two.train + two.val]
    for a, b in zip(one.train + one.val, two.train + two.val, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_shards_hold_every_document_once_split_by_document(shard_dirs, small_bpe):
    docs, shards, _ = shard_dirs
    assert all(read_header(p).n_tokens == 10_000 for p in shards.train[:-1])  # fixed-size shards
    streams = {s: np.concatenate([np.asarray(t) for t in shards.tokens(s)]) for s in ("train", "val")}
    decoded = {s: small_bpe.decode(streams[s].tolist()).split("<|endoftext|>")[1:] for s in streams}
    assert sorted(decoded["train"] + decoded["val"]) == sorted(docs)
    assert not set(decoded["train"]) & set(decoded["val"])  # no leakage, duplicates included
    meta = json.loads((shards.directory / "shards.json").read_text())
    assert meta["documents"]["val"] == len(decoded["val"]) > 0


def test_shard_set_rejects_other_tokenizer(shard_dirs, plays):
    from llm_from_scratch.tokenizer.bpe import train_tokenizer

    other = train_tokenizer(plays[:1], vocab_size=600)
    with pytest.raises(ValueError, match=r"shards\.json: shards were written by tokenizer"):
        shard_dirs[1].check_tokenizer(other)


def test_incomplete_shard_set_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"shards\.json does not exist"):
        ShardSet.load(tmp_path)


def test_stream_and_bytes_per_token(shard_dirs):
    docs, shards, _ = shard_dirs
    val = shards.stream("val")
    assert val.size == shards.n_tokens("val") and val[0] == shards.eot_id
    total_bytes = sum(len(d.encode()) for d in docs)
    n_tokens = shards.n_tokens("train") + shards.n_tokens("val")
    pooled = shards.bytes_per_token("train") * shards.n_tokens("train") + shards.bytes_per_token("val") * val.size
    assert abs(pooled - total_bytes) < 1e-6 * total_bytes and 1 < total_bytes / n_tokens < 6


def test_checksum_recorded_and_flipped_tokens_inside_the_vocab_are_caught(shard):
    header = read_header(shard)
    assert header.checksum_kind == 1 and len(header.checksum) == 32
    corrupt(shard, HEADER_BYTES + 2 * 500, (7).to_bytes(2, "little"))  # id 500 -> 7: still a valid id
    with pytest.raises(ValueError, match=r"s\.bin: the SHA-256 of the tokens does not match"):
        open_shard(shard)
    _, tokens = open_shard(shard, verify=False)  # the raw view stays available for inspection
    assert tokens[500] == 7


def test_ids_outside_the_vocab_are_rejected_on_load_with_the_file(shard):
    corrupt(shard, HEADER_BYTES + 2 * 10, (60_000).to_bytes(2, "little"))
    with pytest.raises(ValueError, match=r"s\.bin: token id 60000 at position 10 is outside the vocabulary of 600"):
        open_shard(shard)


def test_shard_without_a_checksum_still_reads_and_is_range_checked(shard):
    corrupt(shard, 56, bytes(40))  # as written before the checksum existed: kind 0, zeros
    assert open_shard(shard)[1].tolist() == (np.arange(1000) % 600).tolist()
    corrupt(shard, HEADER_BYTES, (65_000).to_bytes(2, "little"))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        open_shard(shard)


def test_damaged_shard_set_manifest_is_one_error(shard_dirs, tmp_path):
    import shutil

    copy = shutil.copytree(shard_dirs[1].directory, tmp_path / "copy")  # the fixture is shared: damage a copy
    manifest = copy / "shards.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(ValueError, match=r"shards\.json: truncated or invalid JSON"):
        ShardSet.load(copy)
