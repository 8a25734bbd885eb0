"""``llm-from-scratch tokenize train|shard``: train a tokenizer, and turn a corpus into token shards."""

from __future__ import annotations

import argparse
from pathlib import Path


def _texts(data: str | None, preset: str):
    """Documents from ``--data`` (a ``.jsonl`` corpus with a ``text`` field, or a plain text file = one document),
    else from the curated corpus of ``preset``."""
    from llm_from_scratch.tokenizer.artifacts import iter_jsonl_texts

    if data is None:
        from llm_from_scratch.data.corpus import curated_corpus

        path = curated_corpus(preset)
        return lambda: iter_jsonl_texts(path)
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"--data {path} does not exist; pass a .jsonl corpus or a .txt file")
    if path.suffix == ".jsonl":
        return lambda: iter_jsonl_texts(path)
    return lambda: iter([path.read_text(encoding="utf-8")])


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from llm_from_scratch.tokenizer.artifacts import TOKENIZER_PRESETS, tokenizer_path, train_from_config

    if args.preset not in TOKENIZER_PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}: choose one of {sorted(TOKENIZER_PRESETS)}")
    config = TOKENIZER_PRESETS[args.preset]
    overrides = {k: v for k, v in (("kind", args.kind), ("vocab_size", args.vocab_size)) if v is not None}
    config = replace(config, **overrides)
    if args.data is None and args.out is None:
        print(tokenizer_path(args.preset, config, progress=True))  # the cached artifact later stages use
        return 0
    tok = train_from_config(config, _texts(args.data, args.preset)(), progress=True)
    suffix = ".model" if config.kind == "sentencepiece" else ".json"
    out = Path(args.out or f"tokenizer{suffix}")
    tok.save(out)
    print(f"{out}: {tok!r}")
    return 0


def _shard(args: argparse.Namespace) -> int:
    from llm_from_scratch.tokenizer.artifacts import SHARD_PRESETS, book_shards, load_tokenizer
    from llm_from_scratch.tokenizer.shards import write_shards

    if args.tokenizer is None and args.data is None and args.out is None:
        shards = book_shards(args.preset, num_workers=args.workers, progress=True)
    else:
        from llm_from_scratch.tokenizer.artifacts import tokenizer_path

        tok_path = Path(args.tokenizer) if args.tokenizer else tokenizer_path(args.preset)
        config = SHARD_PRESETS[args.preset]
        tok = load_tokenizer(tok_path)  # first: a missing tokenizer fails before any corpus work
        shards = write_shards(
            _texts(args.data, args.preset),
            tok,
            tok_path,
            Path(args.out or "shards"),
            args.shard_tokens or config.shard_tokens,
            config.val_fraction if args.val_fraction is None else args.val_fraction,
            args.workers,
        )
    print(
        f"{shards.directory}: {len(shards.train)} train shards ({shards.n_tokens('train')} tokens), "
        f"{len(shards.val)} val shards ({shards.n_tokens('val')} tokens), tokenizer {shards.fingerprint}"
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("tokenize", help="train a tokenizer and write binary token shards")
    sub = p.add_subparsers(title="commands", metavar="<command>")

    t = sub.add_parser("train", help="train a tokenizer (default: the preset's cached tokenizer; prints its path)")
    t.add_argument("--preset", default="book", help="tiny or book (default: book)")
    t.add_argument("--kind", choices=["bpe", "sentencepiece"], help="override the preset's tokenizer kind")
    t.add_argument("--vocab-size", type=int, help="override the preset's vocabulary size")
    t.add_argument("--data", help="train on this .jsonl corpus or .txt file instead of the curated corpus")
    t.add_argument("--out", help="write the tokenizer here (.json for bpe, .model for sentencepiece)")
    t.set_defaults(func=_train)

    s = sub.add_parser("shard", help="tokenize a corpus into train/val shards (default: the preset's cached shards)")
    s.add_argument("--preset", default="book", help="tiny or book (default: book)")
    s.add_argument("--tokenizer", help="tokenizer file (.json or .model); default: the preset's tokenizer")
    s.add_argument(
        "--data", help=".jsonl corpus, or a .txt file (one document: no validation split); default: the curated corpus"
    )
    s.add_argument("--out", help="output directory (default: ./shards when --data or --tokenizer is given)")
    s.add_argument("--shard-tokens", type=int, help="tokens per shard (default: the preset's)")
    s.add_argument("--val-fraction", type=float, help="fraction of documents held out (default: the preset's)")
    s.add_argument("--workers", type=int, default=2, help="tokenizer processes (default: 2)")
    s.set_defaults(func=_shard)
    p.set_defaults(func=lambda args: p.print_help() or 0)
