"""``llm-from-scratch pretrain``: train (or resume, or load from the cache) the book's model, in one process or
under ``torchrun`` with ``--parallel``."""

from __future__ import annotations

import argparse
import os

PARALLEL = ("none", "ddp", "ddp-scratch", "fsdp", "tp", "tp-dtensor")


def _run(args: argparse.Namespace) -> int:
    from llm_from_scratch.train.pretrained import pretrained_run

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.parallel == "none" and world > 1:
        raise RuntimeError(
            f"pretrain runs as one of WORLD_SIZE={world} torchrun processes but --parallel is none: every rank would "
            "train its own copy into the same run directory; pass --parallel ddp, fsdp or tp (or run without torchrun)"
        )
    if args.parallel == "none":
        result = pretrained_run(args.preset, device=args.device, progress=not args.quiet)
        _report(args, result)
        return 0
    from llm_from_scratch.distributed.launch import cleanup_distributed

    try:
        result = pretrained_run(args.preset, device=args.device, progress=not args.quiet, parallel=args.parallel)
        if int(os.environ.get("RANK", "0")) == 0:
            _report(args, result)
    finally:
        cleanup_distributed()
    return 0


def _report(args: argparse.Namespace, result) -> None:
    val = result.last("val_loss")
    ckpt = result.run_dir / "latest.json" if result.run_dir else None
    where = "" if args.parallel == "none" else f" (--parallel {args.parallel}, {os.environ.get('WORLD_SIZE')} ranks)"
    print(
        f"preset {args.preset}{where}: val loss {val:.4f}, perplexity {result.last('val_ppl'):.2f}, "
        f"bits per byte {result.last('val_bpb'):.4f}"
    )
    if result.last("sample"):
        print("sample:", result.last("sample"))
    print(f"checkpoints: {result.run_dir} (pointer {ckpt})")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain the book's model on the curated shards (cached; resumes an interrupted run)",
        description="Pretrain the Transformer of a preset on the curated corpus's shards with AdamW and a "
        "warmup + cosine schedule. The run is cached under the artifact cache: a finished run is loaded, an "
        "interrupted one resumes from its last checkpoint. With --parallel, launch it under torchrun, e.g. "
        "torchrun --standalone --nproc_per_node=2 -m llm_from_scratch.cli pretrain --preset tiny --parallel fsdp "
        "(the preset's batch size is then per rank; the run has its own cache directory).",
    )
    p.add_argument("--preset", default="book", choices=["tiny", "book"], help="model + training preset")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--parallel",
        default="none",
        choices=PARALLEL,
        help="none (one process), data parallel: ddp (torch DDP), ddp-scratch (ours), fsdp (FSDP2); tensor "
        "parallel: tp (ours), tp-dtensor (DTensor); all but none need torchrun",
    )
    p.set_defaults(func=_run)
