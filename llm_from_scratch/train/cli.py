"""``llm-from-scratch pretrain``: train (or resume, or load from the cache) the book's model."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from llm_from_scratch.train.pretrained import pretrained_run

    result = pretrained_run(args.preset, device=args.device, progress=not args.quiet)
    val = result.last("val_loss")
    ckpt = result.run_dir / "latest.json" if result.run_dir else None
    print(
        f"preset {args.preset}: val loss {val:.4f}, perplexity {result.last('val_ppl'):.2f}, "
        f"bits per byte {result.last('val_bpb'):.4f}"
    )
    if result.last("sample"):
        print("sample:", result.last("sample"))
    print(f"checkpoints: {result.run_dir} (pointer {ckpt})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain the book's model on the curated shards (cached; resumes an interrupted run)",
        description="Pretrain the Transformer of a preset on the curated corpus's shards with AdamW and a "
        "warmup + cosine schedule. The run is cached under the artifact cache: a finished run is loaded, an "
        "interrupted one resumes from its last checkpoint.",
    )
    p.add_argument("--preset", default="book", choices=["tiny", "book"], help="model + training preset")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
