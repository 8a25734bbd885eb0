import numpy as np
import pytest

from llm_from_scratch.data.toxicity import (
    HashedFeatures,
    ToxicityClassifier,
    ToxicityConfig,
    binary_metrics,
    flagged_fraction,
    reference_probability,
    reference_vocabulary,
    segments,
    split_by_document,
    train_classifier,
)


def test_segments_split_sentences_and_cap_length():
    text = "One two. Three four!\n" + " ".join(["w"] * 40)
    assert segments(text, max_words=16) == [
        "One two.",
        "Three four!",
        *([" ".join(["w"] * 16)] * 2),
        " ".join(["w"] * 8),
    ]
    assert segments("") == []


def test_hashed_features_are_deterministic_and_in_range():
    f = HashedFeatures(dim=1024)
    feat, seg, val = f.transform(["Hello world", "", "hello"])
    feat2, _, _ = HashedFeatures(dim=1024).transform(["Hello world", "", "hello"])
    assert np.array_equal(feat, feat2) and feat.max() < 1024
    assert set(seg.tolist()) == {0, 2}  # the empty text has no features
    assert np.allclose(np.bincount(seg, weights=val**2), [1, 0, 1])  # unit L2 norm per text


def test_logistic_regression_learns_a_separable_rule_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    vocab = [f"word{i}" for i in range(200)]
    texts = [" ".join(rng.choice(vocab, size=8)) for _ in range(400)]
    labels = np.array([("word7" in t.split()) for t in texts])
    model = ToxicityClassifier(ToxicityConfig(dim=1 << 14, epochs=150, positive_weight=1.0))
    losses = model.fit(texts, labels)
    assert losses[-1] < 0.2 * losses[0]
    assert binary_metrics(labels, model.predict_proba(texts) >= 0.5)["agreement"] > 0.97
    model.save(tmp_path / "m.npz")
    again = ToxicityClassifier.load(tmp_path / "m.npz")
    assert np.allclose(again.predict_proba(texts[:20]), model.predict_proba(texts[:20]), atol=1e-5)


def test_reference_model_and_vocabulary():
    vocab = reference_vocabulary()
    assert len(vocab) > 30 and all(w.isalpha() for w in vocab)
    p = reference_probability(["What a lovely day for a walk.", f"you {vocab[0]} {vocab[1]}"])
    assert p[0] < 0.2 and p[1] > 0.8
    assert len(reference_probability([])) == 0
    assert flagged_fraction("A calm sentence. Another calm one.", reference_probability) == 0.0


def test_split_by_document_keeps_documents_whole():
    ids = [f"d{i // 5}" for i in range(100)]
    test = split_by_document(ids, 0.2)
    by_doc = {}
    for i, t in zip(ids, test, strict=True):
        by_doc.setdefault(i, set()).add(bool(t))
    assert all(len(v) == 1 for v in by_doc.values()) and 0 < test.mean() < 0.5


@pytest.mark.slow
def test_trained_classifier_agrees_with_reference_on_held_out_documents():
    _, evaluation = train_classifier()  # the book's model (about 30 s on 2 cores)
    metrics = evaluation["metrics"]
    assert metrics["agreement"] > 0.93 and metrics["precision"] > 0.85 and metrics["recall"] > 0.8
