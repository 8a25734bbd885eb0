"""End-to-end curation throughput and peak memory on >= 100 MB of input, 2 worker processes.

Input: the real corpora (Shakespeare, Wikipedia, Usenet, news), extracted once, then replicated with random word
substitutions (0-10 % of the words replaced by words of the corpus; some copies unchanged) into a JSONL file of the
requested size, so every stage (language ID, filters, toxicity, exact, near and line dedup) has real work; a quarter
of the copies are served as HTML with paragraphs wrapped at 72 columns, so HTML extraction runs too. Memory is
bounded by construction (at most 2 batches per worker in flight; word caches capped; dedup state ~1 KB per kept
document; line hashes in two generations of at most 2^20 each).
The pipeline runs in a child process per input size;
a sampler thread adds up the resident memory of the main process and its workers (Linux `/proc`).
Bar: peak RSS <= 1 GB, independent of input size. Last line: one JSON object.

    LLM_FROM_SCRATCH_CACHE=/tmp/lfs-cache-bench python benchmarks/bench_curate.py [--mb 25 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np


def make_input(path: Path, megabytes: float, seed: int = 0) -> int:
    from llm_from_scratch.data.normalize import extract
    from llm_from_scratch.data.sources import real_documents

    docs = [(d.source, extract(d.text, d.format)) for d in real_documents()]
    vocab = sorted({w for _, t in docs for w in t.split(" ") if w.isalpha()})  # substitutes are real words
    rng = np.random.default_rng(seed)
    target, written, k = int(megabytes * 1e6), 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            source, text = docs[int(rng.integers(len(docs)))]
            rate = float(rng.choice([0.0, 0.02, 0.05, 0.1]))
            if rate:
                words = text.split(" ")
                for i in np.flatnonzero(rng.random(len(words)) < rate):
                    words[i] = vocab[int(rng.integers(len(vocab)))]
                text = " ".join(words)
            doc_id = f"{source}-{k}"
            if rng.random() < 0.25:  # served as a web page: paragraphs wrapped at 72 columns inside <p>
                doc_id += "-html"
                paras = (textwrap.fill(html.escape(p), 72, break_on_hyphens=False) for p in text.split("\n\n"))
                text = "<!DOCTYPE html><html><head><title>t</title></head><body>\n"
                text += "".join(f"<p>{p}</p>\n" for p in paras) + "</body></html>"
            line = json.dumps({"id": doc_id, "text": text}) + "\n"
            f.write(line)
            written += len(line.encode())
            k += 1
    return written


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(path: str, workers: int) -> None:
    """Curate `path` and print one JSON line with throughput and peak RSS (main + workers)."""
    import multiprocessing as mp

    from llm_from_scratch.data.corpus import CorpusConfig
    from llm_from_scratch.data.pipeline import run_pipeline
    from llm_from_scratch.data.sources import read_jsonl

    peak = {"total_kb": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pids = [os.getpid()] + [p.pid for p in mp.active_children()]
            peak["total_kb"] = max(peak["total_kb"], sum(_rss_kb(p) for p in pids))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    config = CorpusConfig().pipeline  # the book's pipeline: every stage on
    with tempfile.TemporaryDirectory() as tmp:
        docs = (dataclasses.replace(d, format="html") if d.id.endswith("-html") else d for d in read_jsonl(path))
        res = run_pipeline(docs, config, Path(tmp) / "kept.jsonl", Path(tmp) / "rej.jsonl", workers=workers)
    stop.set()
    t.join()
    print(
        json.dumps(
            {
                "bytes_in": res.bytes_in,
                "seconds": res.seconds,
                "docs_in": res.stats["extract"].docs_in,
                "kept": res.kept,
                "peak_rss_mb": peak["total_kb"] / 1024,
                "stages": {k: [v.docs_in, v.docs_out] for k, v in res.stats.items()},
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[25, 100])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_child(args.child, args.workers)
        return

    from llm_from_scratch.data.toxicity import toxicity_model

    toxicity_model()  # train/load the classifier once, outside the timed runs
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.mb:
            path = Path(tmp) / f"input-{mb:g}MB.jsonl"
            size = make_input(path, mb)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path), "--workers", str(args.workers)],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["input_mb"] = size / 1e6
            r["mb_per_s"] = r["bytes_in"] / 1e6 / r["seconds"]
            results.append(r)
            print(
                f"{size / 1e6:7.1f} MB, {r['docs_in']} docs -> {r['kept']} kept: {r['seconds']:.1f} s, "
                f"{r['mb_per_s']:.2f} MB/s, peak RSS (main + {args.workers} workers) {r['peak_rss_mb']:.0f} MB"
            )
            print("   per stage (in, out):", json.dumps(r["stages"]))
    largest = max(results, key=lambda r: r["input_mb"])
    peaks = [r["peak_rss_mb"] for r in results]
    print(
        json.dumps(
            {
                "workers": args.workers,
                "inputs_mb": [round(r["input_mb"], 1) for r in results],
                "mb_per_s": [round(r["mb_per_s"], 3) for r in results],
                "peak_rss_mb": [round(p, 1) for p in peaks],
                "largest_input_mb": round(largest["input_mb"], 1),
                "largest_mb_per_s": round(largest["mb_per_s"], 3),
                "rss_growth_ratio": round(max(peaks) / min(peaks), 3),
                "bar_input_100mb": largest["input_mb"] >= 100,
                "bar_peak_rss_1gb": max(peaks) <= 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
