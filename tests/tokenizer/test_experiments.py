"""The chapter's experiment helpers: the document split, compression, and token pieces."""

from llm_from_scratch.experiments.tokenization import bytes_per_token, compression_curve, pieces, split_documents
from llm_from_scratch.tokenizer.bpe import train_tokenizer
from llm_from_scratch.tokenizer.spm import train_sentencepiece


def test_split_documents_is_a_partition(plays):
    docs = [p[i : i + 5000] for p in plays for i in range(0, 50_000, 5000)]
    train, val = split_documents(docs, 0.2)
    assert sorted(train + val) == sorted(docs) and len(val) == 6 and not set(train) & set(val)


def test_pieces_show_partial_characters_as_bytes(small_bpe, plays):
    assert "".join(pieces(small_bpe, "To be")) == "To be"
    assert pieces(small_bpe, "ή") == ["<0xCE>", "<0xAE>"]
    spm = train_sentencepiece(plays, 400)
    assert pieces(spm, "ή") == ["<0xCE>", "<0xAE>"]


def test_compression_grows_with_vocabulary(plays):
    rows = compression_curve(plays[:2], plays[2:], {"ours": [300, 600], "spm-bpe": [400, 800]})
    by = {(r["kind"], r["vocab"]): r["bytes/token"] for r in rows}
    assert 1 < by["ours", 300] < by["ours", 600] and 1 < by["spm-bpe", 400] < by["spm-bpe", 800]
    bytes_only = train_tokenizer(plays[:1], 261)  # no merges: one token per byte
    assert abs(bytes_per_token(bytes_only, plays[2:]) - 1) < 1e-9
