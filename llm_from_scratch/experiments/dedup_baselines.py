"""datasketch, the production MinHash/LSH library, as the reference the dedup chapter and benchmark compare with
(same shingles, same number of permutations, same bands x rows). Book-only: `datasketch` is a book/test dependency.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_from_scratch.data.dedup import shingle_strings

# --------------------------------------------------------------------------------------------------------------
# datasketch, the production reference
# --------------------------------------------------------------------------------------------------------------


def datasketch_minhashes(texts: Sequence[str], n: int = 5, num_perm: int = 128, method: str = "bulk", seed: int = 1):
    """datasketch `MinHash` objects for `texts` with the same shingles (`update` loop or `MinHash.bulk`)."""
    from datasketch import MinHash

    shingles = [shingle_strings(t, n) for t in texts]
    if method == "bulk":
        return MinHash.bulk(shingles, num_perm=num_perm, seed=seed)
    if method == "update":
        out = []
        for sh in shingles:
            m = MinHash(num_perm=num_perm, seed=seed)
            for s in sh:
                m.update(s)
            out.append(m)
        return out
    raise ValueError(f"method must be 'bulk' or 'update', not {method!r}")


def datasketch_candidates(minhashes, bands: int = 20, rows: int = 6, threshold: float = 0.8) -> set[tuple[int, int]]:
    """Candidate pairs from datasketch's `MinHashLSH` with the same bands x rows."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=minhashes[0].hashvalues.size, params=(bands, rows))
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    pairs = set()
    for i, m in enumerate(minhashes):
        for j in lsh.query(m):
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return pairs
