"""MinHash signatures and near-duplicate detection: our vectorised numpy MinHash vs datasketch.

Documents: >= 10k passages (~100 words) of the real corpora (Shakespeare, Wikipedia, Usenet, news), plus
perturbed copies at known Jaccard levels so there are near-duplicate pairs to find. Both implementations get the
same documents, the same word 5-gram shingles and 128 permutations. Ground truth: every pair with exact Jaccard
>= 0.8 (found through an inverted index over the shingles). Last line: one JSON object.

    python benchmarks/bench_dedup.py [--docs 10000] [--copies 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from llm_from_scratch.data.dedup import (
    MinHasher,
    ShingleHasher,
    jaccard,
    lsh_candidates,
    s_curve,
)
from llm_from_scratch.data.normalize import extract
from llm_from_scratch.data.sources import real_documents
from llm_from_scratch.experiments.curation_evalset import perturb_to_jaccard
from llm_from_scratch.experiments.dedup_baselines import datasketch_candidates, datasketch_minhashes


def passages(n: int, words: int = 100) -> list[str]:
    out = []
    for doc in real_documents():
        w = extract(doc.text, doc.format).split(" ")
        out += [" ".join(w[i : i + words]) for i in range(0, len(w) - words // 2, words)]
    rng = np.random.default_rng(0)
    return [out[i] for i in sorted(rng.choice(len(out), size=min(n, len(out)), replace=False))]


def true_pairs(sets: list[np.ndarray], threshold: float) -> dict[tuple[int, int], float]:
    """All pairs with exact Jaccard >= threshold; only pairs sharing a shingle are compared."""
    sets = [np.unique(s) for s in sets]
    postings: dict[int, list[int]] = {}
    out = {}
    for j, s in enumerate(sets):
        shared = Counter(i for x in s.tolist() for i in postings.get(x, ()))
        for i, inter in shared.items():
            jac = inter / (len(sets[i]) + len(s) - inter)
            if jac >= threshold:
                out[(i, j)] = jac
        for x in s.tolist():
            postings.setdefault(x, []).append(j)
    return out


def timed(fn, repeats: int):
    """Median wall time of `repeats` runs (the benchmarks' convention) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), result


def pr(found: set, truth: set) -> tuple[float, float]:
    tp = len(found & truth)
    return tp / max(len(found), 1), tp / max(len(truth), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--copies", type=int, default=1_000)
    ap.add_argument("--bands", type=int, default=20)
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    texts = passages(args.docs)
    hasher = ShingleHasher(5)
    for i in rng.choice(len(texts), size=args.copies, replace=False):
        texts.append(perturb_to_jaccard(texts[i], float(rng.uniform(0.5, 1.0)), rng, hasher)[0])
    n_words = sum(len(t.split()) for t in texts)
    print(f"{len(texts)} documents ({args.docs} real passages + {args.copies} perturbed copies), {n_words} words")

    def ours():
        return MinHasher(128, seed=1).signatures(ShingleHasher(5).many(texts))

    t_ours, sigs = timed(ours, 3)
    t_bulk, ds_bulk = timed(lambda: datasketch_minhashes(texts, method="bulk"), 3)
    t_update, _ = timed(lambda: datasketch_minhashes(texts, method="update"), 1)
    print(f"signatures: ours {t_ours:.2f} s | datasketch bulk {t_bulk:.2f} s | datasketch update loop {t_update:.2f} s")

    sets = ShingleHasher(5).many(texts)
    truth_j = true_pairs(sets, args.threshold)
    truth = set(truth_j)
    b, r = args.bands, args.rows
    cand_ours = lsh_candidates(sigs, b, r)
    cand_ds = datasketch_candidates(ds_bulk, b, r, args.threshold)
    est_ours = {p for p in cand_ours if np.mean(sigs[p[0]] == sigs[p[1]]) >= args.threshold}
    est_ds = {p for p in cand_ds if ds_bulk[p[0]].jaccard(ds_bulk[p[1]]) >= args.threshold}
    exact_ours = {p for p in cand_ours if jaccard(sets[p[0]], sets[p[1]]) >= args.threshold}
    exact_ds = {p for p in cand_ds if jaccard(sets[p[0]], sets[p[1]]) >= args.threshold}
    rows = {
        "ours": (cand_ours, est_ours, exact_ours),
        "datasketch": (cand_ds, est_ds, exact_ds),
    }
    print(f"true pairs with J >= {args.threshold}: {len(truth)}; bands x rows = {b} x {r}, "
          f"S-curve P(candidate | J=0.8) = {float(s_curve(0.8, b, r)):.4f}")  # fmt: skip
    result = {"documents": len(texts), "num_perm": 128, "shingle": "word 5-gram", "bands": b, "rows": r,
              "true_pairs": len(truth), "seconds_ours": round(t_ours, 3), "seconds_datasketch_bulk": round(t_bulk, 3),
              "seconds_datasketch_update": round(t_update, 3), "speedup_vs_update": round(t_update / t_ours, 2),
              "speedup_vs_bulk": round(t_bulk / t_ours, 2)}  # fmt: skip
    print(f"{'':<11} {'candidates':>10} {'cand. recall':>12} {'P (MinHash J)':>13} {'R (MinHash J)':>13} "
          f"{'P (exact J)':>11} {'R (exact J)':>11}")  # fmt: skip
    for name, (cand, est, exact) in rows.items():
        cand_recall = len(cand & truth) / max(len(truth), 1)
        pe, re_ = pr(est, truth)
        px, rx = pr(exact, truth)
        print(f"{name:<11} {len(cand):>10} {cand_recall:>12.4f} {pe:>13.4f} {re_:>13.4f} {px:>11.4f} {rx:>11.4f}")
        result.update({f"{name}_candidates": len(cand), f"{name}_candidate_recall": round(cand_recall, 4),
                       f"{name}_precision_minhash": round(pe, 4), f"{name}_recall_minhash": round(re_, 4),
                       f"{name}_precision_exact": round(px, 4), f"{name}_recall_exact": round(rx, 4)})  # fmt: skip
    result["bar_speedup_update_5x"] = result["speedup_vs_update"] >= 5
    result["bar_speedup_bulk_1.5x"] = result["speedup_vs_bulk"] >= 1.5
    result["bar_pr_0.95"] = all(
        result[f"{n}_{m}_exact"] >= 0.95 for n in ("ours", "datasketch") for m in ("precision", "recall")
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
