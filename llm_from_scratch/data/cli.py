"""``llm-from-scratch curate``: build the curated corpus of a preset, or curate your own files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _print_summary(result) -> None:
    rows = result.summary_rows()
    print(f"{'stage':<18} {'docs in':>8} {'out':>8} {'rejected':>8} {'MB in':>8} {'MB out':>8}  top reason")
    for r in rows:
        print(
            f"{r['stage']:<18} {r['docs_in']:>8} {r['docs_out']:>8} {r['rejected']:>8} "
            f"{r['MB_in']:>8.2f} {r['MB_out']:>8.2f}  {r['top_reason']}"
        )
    mb = result.bytes_in / 1e6
    print(f"kept {result.kept}, rejected {result.rejected}; {mb:.1f} MB in {result.seconds:.1f} s")


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from llm_from_scratch.data.corpus import corpus_config, curated_corpus, curation_stats

    if not args.inputs:
        path = curated_corpus(args.preset, workers=args.workers, progress=True)
        stats = curation_stats(args.preset)
        print(json.dumps({k: {"in": v["docs_in"], "out": v["docs_out"]} for k, v in stats["stages"].items()}))
        print(path)
        return 0

    import itertools

    from llm_from_scratch.data.pipeline import run_pipeline
    from llm_from_scratch.data.sources import read_path

    config = corpus_config(args.preset).pipeline
    if args.toxicity:
        config = replace(config, toxicity=args.toxicity)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    docs = itertools.chain.from_iterable([read_path(p) for p in args.inputs])  # missing inputs fail now
    result = run_pipeline(docs, config, out / "kept.jsonl", out / "rejected.jsonl", workers=args.workers, progress=True)
    (out / "stats.json").write_text(json.dumps(result.to_json(), indent=1))
    _print_summary(result)
    print(f"wrote {out / 'kept.jsonl'}, {out / 'rejected.jsonl'} and {out / 'stats.json'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "curate",
        help="curate raw text (folders, JSONL, gzip, WARC/WET) into clean, deduplicated JSONL",
        description="Without INPUT: build (or find) the cached curated corpus of --preset and print its path. "
        "With INPUT files or folders: curate them into --output (kept.jsonl, rejected.jsonl with reasons, "
        "stats.json) and print per-stage statistics.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="text folder, .jsonl[.gz], .warc[.gz]/.wet[.gz] or .txt")
    p.add_argument("--preset", default="book", help="tiny or book (default: book)")
    p.add_argument("--output", default="curated", help="output folder when INPUTs are given (default: curated)")
    p.add_argument("--workers", type=int, default=1, help="worker processes for the per-document stages")
    p.add_argument("--toxicity", choices=("ours", "reference", "off"), help="toxicity backend (default: the preset's)")
    p.set_defaults(func=_run)
