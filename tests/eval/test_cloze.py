import math

import pytest
import torch


def test_items_are_real_next_lines_with_distractors_from_other_documents(docs):
    from llm_from_scratch.eval.cloze import build_cloze_items

    items = build_cloze_items(docs, 40, n_choices=4, context_lines=3, seed=0)
    assert len(items) == 40
    for it in items:
        lines = [ln.strip() for ln in docs[it.doc].splitlines() if ln.strip()]
        ctx = it.context.splitlines()
        true = it.choices[it.answer]
        # the context is 3 consecutive lines of the document and the answer is the line right after them
        assert any(lines[i : i + 3] == ctx and lines[i + 3] == true for i in range(len(lines) - 3))
        others = [c for j, c in enumerate(it.choices) if j != it.answer]
        assert len(set(it.choices)) == 4
        near = lines[max(0, lines.index(true) - 50) : lines.index(true) + 51]
        assert all(c not in near for c in others)  # distractors never come from the neighbourhood of the answer


def test_items_are_deterministic_and_answers_spread(docs):
    from llm_from_scratch.eval.cloze import build_cloze_items

    a = build_cloze_items(docs, 60, seed=3)
    assert a == build_cloze_items(docs, 60, seed=3)
    assert a != build_cloze_items(docs, 60, seed=4)
    counts = [sum(it.answer == k for it in a) for k in range(4)]
    assert min(counts) >= 5  # the true line is shuffled among the positions


def test_choice_logprobs_equal_a_token_by_token_computation(model, tok, docs):
    """The batched, padded scorer against the definition: sum over the choice's tokens of log p(token | prefix)."""
    from llm_from_scratch.eval.cloze import build_cloze_items, choice_logprobs

    items = build_cloze_items(docs, 3, seed=1)
    got = choice_logprobs(model, tok, items, batch_size=5)
    limit = model.config.context_length
    for it, scores in zip(items, got, strict=True):
        for choice, (logp, n_bytes) in zip(it.choices, scores, strict=True):
            reply = tok.encode(choice + "\n")
            ctx = tok.encode(it.context)[-(limit - len(reply)) :]
            ids = torch.tensor([ctx + reply])
            with torch.no_grad():
                logits, _ = model(ids)
            lp = torch.log_softmax(logits[0].double(), -1)
            want = sum(lp[len(ctx) - 1 + k, t].item() for k, t in enumerate(reply))
            assert logp == pytest.approx(want, abs=1e-4)
            assert n_bytes == len((choice + "\n").encode())


def test_score_cloze_accuracy_and_chance(model, tok, docs, monkeypatch):
    from llm_from_scratch.eval import cloze

    items = cloze.build_cloze_items(docs, 20, seed=0)
    # the true line: the highest log-likelihood (-5 against -10), but 1 byte long, so the lowest per byte
    fake = [[(-5.0, 1) if j == it.answer else (-10.0, 1000) for j in range(len(it.choices))] for it in items]
    monkeypatch.setattr(cloze, "choice_logprobs", lambda *a, **k: fake)
    r = cloze.score_cloze(model, tok, items)
    assert r["accuracy"] == 1.0
    assert r["accuracy_norm"] == 0.0
    assert r["chance"] == pytest.approx(0.25) and r["n"] == 20


def test_random_model_is_near_chance(model, tok, docs):
    from llm_from_scratch.eval.cloze import build_cloze_items, score_cloze

    r = score_cloze(model, tok, build_cloze_items(docs, 80, seed=0))
    assert abs(r["accuracy_norm"] - 0.25) < 0.2  # an untrained model knows nothing about which line follows


def test_heldout_documents_are_the_shard_validation_split(tmp_path, tok):
    import json

    from llm_from_scratch.eval.cloze import heldout_documents
    from llm_from_scratch.tokenizer.shards import ShardSet, write_shards

    texts = [f"document number {i} " * (i % 7 + 1) for i in range(40)]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "source": "x", "text": t}) + "\n" for i, t in enumerate(texts)))
    tok_path = tmp_path / "tok.json"
    tok.save(tok_path)
    shards = write_shards(texts, tok, tok_path, tmp_path / "s", 1 << 12, 0.2, 1, False)
    held = heldout_documents(corpus, 0.2)
    assert len(held) == 8
    want = [tid for t in held for tid in [tok.eot_id, *tok.encode(t)]]
    assert ShardSet.load(shards.directory).stream("val").tolist() == want


def test_heldout_lm_metrics_match_the_definitions(model, tok, docs):
    import numpy as np

    from llm_from_scratch.eval.lm import EvalConfig, heldout_lm_metrics

    val = np.array(tok.encode(docs[0][:8000]), dtype=np.uint16)
    m = heldout_lm_metrics(model, val, 3.0, EvalConfig(ppl_batches=2, ppl_batch_size=4))
    assert m["ppl"] == pytest.approx(math.exp(m["loss"]))
    assert m["bpb"] == pytest.approx(m["loss"] / math.log(2) / 3.0)
    assert abs(m["loss"] - math.log(tok.vocab_size)) < 1.0  # an untrained model is close to uniform
