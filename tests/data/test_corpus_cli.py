import json

import numpy as np
import pytest

from llm_from_scratch.cli import main
from llm_from_scratch.data.dedup import ShingleHasher, jaccard
from llm_from_scratch.data.normalize import extract
from llm_from_scratch.data.sources import news_articles
from llm_from_scratch.experiments.curation_evalset import build_eval_set, earlier_max_jaccard
from llm_from_scratch.pipeline import Artifacts


@pytest.fixture
def root(tmp_path):
    return tmp_path / "artifacts"


def test_tiny_corpus_is_built_once_and_clean(root):
    art = Artifacts("tiny", root)
    path = art.corpus_path()
    mtime = path.stat().st_mtime_ns
    assert Artifacts("tiny", root).corpus_path().stat().st_mtime_ns == mtime  # found, not rebuilt
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert len({d["id"] for d in docs}) == len(docs) > 5
    assert {d["source"] for d in docs} >= {"shakespeare", "news"}
    assert list(art.texts()) == [d["text"] for d in docs]
    play = next(d["text"] for d in docs if d["source"] == "shakespeare")
    assert "**" not in play and "\n_" not in play and ":\n" in play
    stats = art.curation_stats()
    assert stats["kept"] == len(docs) and stats["stages"]["extract"]["docs_in"] == 4 * len(art.config.data.sources)
    assert len(list(art.rejected_documents())) == stats["rejected"]
    with pytest.raises(ValueError, match="unknown preset"):
        Artifacts("huge", root)


def test_cli_curate_your_own_files_and_errors(tmp_path, root, capsys):
    src = tmp_path / "in.jsonl"
    good = next(news_articles()).text  # a real article: passes every filter
    src.write_text(json.dumps({"text": good}) + "\n" + json.dumps({"text": good}) + "\nnot json\n")
    args = ["curate", str(src), "--preset", "tiny", "--out", str(root), "--set", "data.pipeline.toxicity=off"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "curate: kept 1, rejected 2" in out
    art = Artifacts("tiny", root, overrides={"data": {"sources": [str(src)], "pipeline": {"toxicity": "off"}}})
    kept = art.corpus_path().read_text().splitlines()
    reasons = sorted(d["reason"] for d in art.rejected_documents())
    assert len(kept) == 1 and reasons == ["exact_dedup:duplicate", "extract:empty"]
    assert main(args) == 0 and "curate: reused" in capsys.readouterr().out  # the same files: found, not rebuilt
    src.write_text(json.dumps({"text": good}) + "\n")
    assert main(args) == 0 and "curate: building" in capsys.readouterr().out  # a changed file: a new corpus
    assert main(["curate", str(tmp_path / "missing.jsonl"), "--out", str(root)]) == 2
    assert "neither a built-in source" in capsys.readouterr().err


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


def test_a_damaged_file_among_your_own_is_skipped_and_counted_or_stops(tmp_path, root, capsys):
    import gzip

    folder = tmp_path / "texts"
    folder.mkdir()
    good = next(news_articles()).text
    (folder / "a.txt").write_text(good)
    blob = gzip.compress((json.dumps({"text": good + " more"}) + "\n").encode() * 50)
    (folder / "b.jsonl.gz").write_bytes(blob[: len(blob) // 2])  # cut off mid-stream
    args = ["curate", str(folder), "--preset", "tiny", "--out", str(root), "--set", "data.pipeline.toxicity=off"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 damaged input files skipped" in out and "b.jsonl.gz" in out
    assert main([*args, "--set", "data.on_bad_file=stop", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "b.jsonl.gz" in err and len(err.splitlines()) == 1 and "Traceback" not in err
