"""Bits per byte of whole documents with the model's own tokenizer (`eval --gguf`, chapter 17)."""

import math

import torch

from llm_from_scratch.eval.external import bounded_documents, documents_bits_per_byte
from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.transformer import Transformer
from llm_from_scratch.tokenizer.bpe import train_tokenizer


def test_bounded_documents_take_an_equal_share_of_each_and_cut_at_characters():
    docs = ["a" * 100, "é" * 100, ""]
    out = bounded_documents(docs, 30)
    assert out == ["a" * 10, "é" * 5]  # 10 bytes each; é is two bytes
    assert bounded_documents(docs, None) == docs[:2]


def test_bits_per_byte_counts_every_token_once_and_divides_by_the_document_bytes():
    torch.manual_seed(0)
    tok = train_tokenizer(["hello world, hello there. " * 20], vocab_size=300)
    model = Transformer(ModelConfig(vocab_size=tok.vocab_size, context_length=8, d_model=16, n_layers=1,
                                    n_heads=2, n_kv_heads=2, ffn_hidden=32)).eval()  # fmt: skip
    docs = ["hello world, hello there.", "there, hello world"]
    r = documents_bits_per_byte(model, tok, docs, window=4)
    assert r["tokens"] == sum(len(tok.encode(d)) for d in docs)
    assert r["bytes"] == sum(len(d.encode()) for d in docs)
    # the same loss computed by hand with the whole document in one window
    big = documents_bits_per_byte(model, tok, docs, window=64)  # capped at the context of 8
    assert big["tokens"] == r["tokens"]
    nats = 0.0
    for d in docs:
        ids = torch.tensor([[tok.eot_id, *tok.encode(d)]])
        for s in range(0, ids.shape[1] - 1, 4):
            chunk = ids[:, s : s + 5]
            logits, _ = model(chunk[:, :-1])
            nats += torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item()
    assert math.isclose(r["bpb"], nats / math.log(2) / r["bytes"], rel_tol=1e-5)
