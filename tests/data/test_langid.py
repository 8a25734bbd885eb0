import importlib.metadata

import numpy as np
import pytest

from llm_from_scratch.data.langid import (
    NaiveBayesLangID,
    accuracy_table,
    catalog_samples,
    char_ngram_ids,
    langid_model,
    parse_po,
)
from llm_from_scratch.data.pipeline import STAGES, DocumentStages, PipelineConfig, StageStats
from llm_from_scratch.data.sources import Document, news_articles


def test_parse_po_handles_continuations_plurals_and_untranslated():
    po = (
        'msgid ""\nmsgstr "Header: x\\n"\n\n'
        'msgid "Search "\n"results"\nmsgstr "Résultats de "\n"la recherche"\n\n'
        'msgid "untranslated"\nmsgstr ""\n\n'
        'msgid "one file"\nmsgid_plural "%d files"\nmsgstr[0] "un fichier"\n'
    )
    assert parse_po(po) == [("Search results", "Résultats de la recherche")]


def test_ngram_ids_are_bounded_and_count_every_ngram():
    ids = char_ngram_ids("abc", 4, 1 << 10)
    padded = 5  # " abc "
    assert len(ids) == sum(padded - n + 1 for n in range(1, 5))
    assert ids.min() >= 0 and ids.max() < 1 << 10


def test_catalog_split_keeps_a_message_and_its_translations_together():
    samples = catalog_samples()
    langs = {lang for lang, _, _ in samples}
    assert {"en", "fr", "ru", "zh", "ko"} <= langs and len(langs) >= 15
    test_frac = np.mean([t for _, _, t in samples])
    assert 0.1 < test_frac < 0.3


def test_held_out_accuracy_against_py3langid():
    """Ours on held-out catalog entries of >= 4 words, next to langid.py's packaged model restricted to the same
    languages. Ours is trained on the same kind of text (in-domain), so it should not be worse."""
    pytest.importorskip("py3langid")
    table = accuracy_table(min_words=4)
    n = sum(r["n"] for r in table.values())
    ours = sum(r["ours"] * r["n"] for r in table.values()) / n
    ref = sum(r["reference"] * r["n"] for r in table.values()) / n
    assert n > 1000
    assert ours >= 0.95 and ref >= 0.9
    assert ours >= ref - 0.02
    assert min(r["ours"] for r in table.values()) >= 0.85  # no language left behind


def test_naive_bayes_learns_a_toy_problem():
    model = NaiveBayesLangID.fit(["aaaa aaa", "aa aaaa", "bbbb bb", "bbb bbbb"], ["a", "a", "b", "b"], buckets=256)
    assert model.predict("aaa")[0] == "a" and model.predict("bb bbb")[0] == "b"
    assert model.predict("aaaa aaaa")[1] > 0.99


def _stats():
    return {s: StageStats() for s in STAGES}


def test_pipeline_keeps_english_and_rejects_other_languages_with_reasons():
    stages = DocumentStages(PipelineConfig(toxicity="off"))
    english = next(iter(news_articles()))
    french = " ".join(t for lang, t, test in catalog_samples(min_words=4) if lang == "fr" and test)[:3000]
    greek = " ".join(t for lang, t, test in catalog_samples(min_words=4) if lang == "el" and test)[:3000]
    stats = _stats()
    assert stages.run(english, stats)[0] is not None
    assert stages.run(Document("fr", "web", french), stats)[1].reason == "langid:fr"
    assert stages.run(Document("el", "web", greek), stats)[1].reason == "langid:el"
    assert stats["langid"].reasons == {"langid:fr": 1, "langid:el": 1}
    assert langid_model().predict(english.text)[0] == "en"


def test_unknown_language_is_a_counted_rejection():
    stages = DocumentStages(PipelineConfig(toxicity="off"))
    # Finnish has too few catalog entries to be modelled: its page must be rejected as not English, never crash.
    po = next(f for f in importlib.metadata.files("sphinx") if str(f).endswith("locale/fi/LC_MESSAGES/sphinx.po"))
    finnish = " ".join(msgstr for _, msgstr in parse_po(po.locate().read_text(encoding="utf-8")))
    assert len(finnish.split()) > 50
    stats = _stats()
    out, rej = stages.run(Document("fi", "web", finnish), stats)
    assert out is None and rej.stage == "langid" and rej.reason != "langid:en"
    assert stats["langid"].docs_in == 1 and stats["langid"].rejected == 1
