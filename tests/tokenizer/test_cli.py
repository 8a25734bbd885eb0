"""``llm-from-scratch tokenize train|shard`` end to end on a small file, and its one-line errors."""

import json

from llm_from_scratch.cli import main
from llm_from_scratch.tokenizer.artifacts import load_tokenizer


def test_train_then_shard(tmp_path, plays, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "text": p[:30_000]}) + "\n" for i, p in enumerate(plays)))
    tok = tmp_path / "tok.json"
    assert main(["tokenize", "train", "--data", str(corpus), "--vocab-size", "400", "--out", str(tok)]) == 0
    assert load_tokenizer(tok).vocab_size == 400
    out = tmp_path / "shards"
    args = ["tokenize", "shard", "--tokenizer", str(tok), "--data", str(corpus), "--out", str(out), "--workers", "1"]
    assert main([*args, "--val-fraction", "0.3"]) == 0
    assert "1 val shards" in capsys.readouterr().out
    assert (out / "shards.json").exists()


def test_missing_tokenizer_is_one_line_error(tmp_path, capsys):
    assert main(["tokenize", "shard", "--tokenizer", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope.json does not exist" in err and err.count("\n") == 1


def test_artifacts_are_built_once_and_keyed_by_the_corpus(tmp_path, monkeypatch, plays):
    import llm_from_scratch.data.corpus as corpus_module
    from llm_from_scratch.tokenizer import artifacts

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "text": p[:20_000]}) + "\n" for i, p in enumerate(plays)))
    monkeypatch.setenv("LLM_FROM_SCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(corpus_module, "curated_corpus", lambda preset="book": corpus)
    tok = artifacts.book_tokenizer("tiny")
    path = artifacts.tokenizer_path("tiny")
    assert tok.vocab_size == 512 and path.is_relative_to(tmp_path / "cache" / "tokenizer")
    shards = artifacts.book_shards("tiny", num_workers=1)
    assert shards.fingerprint == tok.fingerprint and shards.val and shards.train
    mtime = path.stat().st_mtime_ns
    assert artifacts.book_tokenizer("tiny").fingerprint == tok.fingerprint and path.stat().st_mtime_ns == mtime
    corpus.write_text(corpus.read_text() + json.dumps({"id": "new", "text": "A new document."}) + "\n")
    assert artifacts.tokenizer_path("tiny") != path  # a changed corpus means a new tokenizer, not a stale one
