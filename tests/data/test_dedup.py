import numpy as np
import pytest

from llm_from_scratch.data.dedup import (
    MinHasher,
    ShingleHasher,
    StreamingNearDedup,
    band_keys,
    connected_components,
    estimated_jaccard,
    exact_key,
    jaccard,
    lsh_candidates,
    near_duplicates,
    s_curve,
    shingle_strings,
)
from llm_from_scratch.experiments.dedup_baselines import datasketch_candidates, datasketch_minhashes


def _text(rng, n=300):
    return " ".join(f"w{int(x)}" for x in rng.integers(0, 5000, size=n))


def _edit(text, rng, k):
    w = text.split()
    for i in rng.choice(len(w), size=k, replace=False):
        w[i] = f"z{int(rng.integers(1e9))}"
    return " ".join(w)


def test_exact_key_ignores_case_punctuation_accents_whitespace():
    assert exact_key("Hello,  World!") == exact_key("hello world") == exact_key("HÉLLO\nworld.")
    assert exact_key("hello world") != exact_key("hello word")


def test_shingle_hashes_are_the_same_sets_as_datasketch_shingles():
    rng = np.random.default_rng(0)
    texts = [_text(rng, n) for n in (0, 1, 3, 5, 6, 50)] + ["The cat sat on the mat. The cat sat on the mat."]
    hashed = ShingleHasher(5).many(texts)
    for t, h in zip(texts, hashed, strict=True):
        assert len(np.unique(h)) == len(set(shingle_strings(t, 5)))  # one hash per distinct shingle
        assert np.array_equal(h, ShingleHasher(5)(t))  # batched == one at a time


@pytest.mark.parametrize("edits", [5, 30, 80])
def test_minhash_estimates_jaccard_within_three_sigma_and_agrees_with_datasketch(edits):
    rng = np.random.default_rng(edits)
    a = _text(rng)
    b = _edit(a, rng, edits)
    sh = ShingleHasher(5)
    j = jaccard(sh(a), sh(b))
    sigma = np.sqrt(j * (1 - j) / 256) + 1e-9
    ours = MinHasher(256, seed=3).signatures([sh(a), sh(b)])
    assert abs(estimated_jaccard(ours[0], ours[1]) - j) < 3 * sigma + 0.01
    ds = datasketch_minhashes([a, b], num_perm=256)
    assert abs(ds[0].jaccard(ds[1]) - j) < 3 * sigma + 0.01


def test_empty_document_signature_and_batching_independence():
    sh = ShingleHasher(5)
    rng = np.random.default_rng(1)
    sets = sh.many([_text(rng), "", _text(rng, 40)])
    big = MinHasher(64).signatures(sets)
    small = MinHasher(64, max_batch_shingles=10).signatures(sets)  # one document per batch
    assert np.array_equal(big, small)
    assert (big[1] == np.uint32(0xFFFFFFFF)).all()


def test_s_curve_matches_simulated_band_collisions():
    # Two signatures that agree on each row independently with probability s collide in a band with s^r.
    rng = np.random.default_rng(0)
    bands, rows, s, trials = 8, 4, 0.6, 4000
    agree = rng.random((trials, bands, rows)) < s
    measured = agree.all(axis=2).any(axis=1).mean()
    assert measured == pytest.approx(float(s_curve(s, bands, rows)), abs=0.03)
    assert float(s_curve(1.0, 20, 6)) == 1.0 and float(s_curve(0.0, 20, 6)) == 0.0


def test_lsh_candidates_equal_brute_force_band_comparison():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 4, size=(60, 12)).astype(np.uint32)  # small alphabet: many band collisions
    bands, rows = 4, 3
    brute = {
        (i, j)
        for i in range(60)
        for j in range(i + 1, 60)
        if any((sigs[i, b * rows : (b + 1) * rows] == sigs[j, b * rows : (b + 1) * rows]).all() for b in range(bands))
    }
    assert lsh_candidates(sigs, bands, rows) == brute
    with pytest.raises(ValueError):
        band_keys(sigs, 5, 3)


def test_connected_components_keep_smallest_index():
    comps = connected_components(6, [(1, 3), (3, 5), (2, 4)])
    assert comps.tolist() == [0, 1, 2, 1, 2, 1]


def test_near_duplicates_recall_and_precision_and_datasketch_candidates():
    rng = np.random.default_rng(7)
    base = [_text(rng, 200) for _ in range(40)]
    near = [_edit(t, rng, 3) for t in base[:10]]  # J ~ 0.86
    far = [_edit(t, rng, 60) for t in base[10:20]]  # J well below 0.5
    texts = base + near + far
    sets = ShingleHasher(5).many(texts)
    res = near_duplicates(sets, threshold=0.8)
    truth = {(i, 40 + i) for i in range(10)}
    assert res.duplicates == truth
    assert res.keep.sum() == len(texts) - 10 and not res.keep[40:50].any()
    ds = datasketch_candidates(datasketch_minhashes(texts), bands=20, rows=6)
    assert truth <= ds  # the production path finds the same true pairs as candidates
    assert near_duplicates(sets, verify="minhash").duplicates == truth


def test_streaming_dedup_indexes_dropped_documents():
    rng = np.random.default_rng(3)
    a = _text(rng, 400)
    b = _edit(a, rng, 6)
    c = _edit(b, rng, 6)
    sigs = MinHasher().signatures(ShingleHasher(5).many([a, b, c, _text(rng)]))
    stream = StreamingNearDedup(0.8)
    found = [stream.add(s) for s in sigs]
    assert found[0] is None and found[1] == 0 and found[2] in (0, 1) and found[3] is None
