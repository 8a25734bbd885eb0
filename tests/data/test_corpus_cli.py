import json

import numpy as np
import pytest

from llm_from_scratch.cli import main
from llm_from_scratch.data.corpus import PRESETS, curated_corpus, curation_stats, iter_corpus_texts, rejected_documents
from llm_from_scratch.data.dedup import ShingleHasher, jaccard
from llm_from_scratch.data.evalset import build_eval_set, earlier_max_jaccard
from llm_from_scratch.data.normalize import extract
from llm_from_scratch.data.sources import news_articles


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_FROM_SCRATCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tiny_corpus_is_built_once_and_clean(cache):
    path = curated_corpus("tiny")
    mtime = path.stat().st_mtime_ns
    assert curated_corpus("tiny").stat().st_mtime_ns == mtime  # cached, not rebuilt
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert len({d["id"] for d in docs}) == len(docs) > 5
    assert {d["source"] for d in docs} >= {"shakespeare", "news"}
    assert list(iter_corpus_texts("tiny")) == [d["text"] for d in docs]
    play = next(d["text"] for d in docs if d["source"] == "shakespeare")
    assert "**" not in play and "\n_" not in play and ":\n" in play
    stats = curation_stats("tiny")
    assert stats["kept"] == len(docs) and stats["stages"]["extract"]["docs_in"] == 4 * len(PRESETS["tiny"].sources)
    assert len(list(rejected_documents("tiny"))) == stats["rejected"]
    with pytest.raises(ValueError, match="unknown corpus preset"):
        curated_corpus("huge")


def test_cli_curate_files_and_errors(tmp_path, cache, capsys):
    src = tmp_path / "in.jsonl"
    good = next(news_articles()).text  # a real article: passes every filter
    src.write_text(json.dumps({"text": good}) + "\n" + json.dumps({"text": good}) + "\nnot json\n")
    assert main(["curate", str(src), "--output", str(tmp_path / "out"), "--toxicity", "off"]) == 0
    kept = (tmp_path / "out" / "kept.jsonl").read_text().splitlines()
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert len(kept) == 1 and sorted(reasons) == ["exact_dedup:duplicate", "extract:empty"]
    assert main(["curate", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_set_labels_are_true_by_construction():
    items = build_eval_set(per_source=8, seed=1)
    kinds = {it.kind for it in items}
    assert {"clean", "exact_dup", "near_dup", "gibberish", "keyword_stuffing", "profane", "bullet_list"} <= kinds
    sh = ShingleHasher(5)
    by_id = {it.doc.id: it for it in items}
    for it in items:
        if it.kind in ("near_dup", "near_dup_below"):
            orig = by_id[it.original]
            j = jaccard(sh(extract(it.doc.text, "text")), sh(extract(orig.doc.text, "text")))
            assert j == pytest.approx(it.jaccard, abs=1e-9) and (j >= 0.8) == (it.kind == "near_dup")
    best = earlier_max_jaccard(items)
    sets = [np.unique(sh(extract(it.doc.text, "text"))) for it in items]
    for j in range(0, len(items), 7):  # spot-check the inverted index against brute force
        brute = max([jaccard(sets[i], sets[j]) for i in range(j)], default=0.0)
        assert best[j] == pytest.approx(brute)
