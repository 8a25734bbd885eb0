import itertools

import numpy as np
import pytest

from llm_from_scratch.data.pipeline import STAGES, DocumentStages, PipelineConfig, StageStats
from llm_from_scratch.data.quality import (
    FastTextClassifier,
    ngram_ids,
    quality_dataset,
    quality_model,
    synthetic_spam,
    threshold_curve,
)
from llm_from_scratch.data.sources import Document, wikipedia_sample


def test_ngram_ids_are_unigrams_plus_bigrams():
    ids = ngram_ids("The cat, the CAT!", 1 << 20)
    assert len(ids) == 4 + 3
    assert ids[0] == ids[2] == ngram_ids("the", 1 << 20)[0]  # lower-cased, punctuation is not a word
    assert ids[4] == ids[6]  # "the cat" twice


def test_fasttext_learns_a_toy_problem():
    texts = ["good clean prose here"] * 20 + ["spam spam buy now"] * 20
    model = FastTextClassifier.fit(texts, [1] * 20 + [0] * 20, buckets=1 << 10, epochs=10)
    assert model.predict_proba("clean prose") > 0.8 > 0.2 > model.predict_proba("buy spam now")


@pytest.fixture(scope="module")
def held_out():
    rows = quality_dataset()
    test = [(t, y) for t, y, is_test in rows if is_test]
    model = quality_model()
    scores = np.array([model.predict_proba(t) for t, _ in test])
    return rows, test, scores, np.array([y for _, y in test])


def test_held_out_precision_recall_and_a_library_logistic_regression(held_out):
    rows, test, scores, labels = held_out
    assert {0, 1} <= set(labels) and len(test) >= 100
    curve = threshold_curve(scores, labels, np.linspace(0.1, 0.9, 9))
    mid = curve[4]
    assert mid["threshold"] == pytest.approx(0.5)
    assert mid["precision"] >= 0.75 and mid["recall"] >= 0.85
    recalls = [r["recall"] for r in curve]
    assert all(a >= b for a, b in itertools.pairwise(recalls))  # recall falls as the bar rises
    # The same features in scikit-learn's logistic regression: ours should be about as good.
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    hv = HashingVectorizer(ngram_range=(1, 2), n_features=1 << 18, alternate_sign=False, norm="l1")
    train = [(t, y) for t, y, is_test in rows if not is_test]
    ref = LogisticRegression(C=100, max_iter=2000).fit(hv.transform([t for t, _ in train]), [y for _, y in train])
    ref_acc = (ref.predict(hv.transform([t for t, _ in test])) == labels).mean()
    ours_acc = ((scores >= 0.5) == labels).mean()
    assert ours_acc >= ref_acc - 0.05 and ours_acc >= 0.8


def test_quality_stage_rejects_spam_and_keeps_reference_text():
    stages = DocumentStages(PipelineConfig(toxicity="off", quality="ours"))
    stats = {s: StageStats() for s in STAGES}
    article = next(d for d in wikipedia_sample() if len(d.text) > 20_000)
    vocab = sorted(set(article.text.split()))
    spam = " ".join(synthetic_spam(vocab, 8, seed=123)[1::4])  # word salad with sentence punctuation passes C4
    assert stages.run(article, stats)[0] is not None
    out, rej = stages.run(Document("spam", "web", spam), stats)
    assert out is None and rej is not None
    assert stats["quality"].docs_in == stats["quality"].docs_out + stats["quality"].rejected
