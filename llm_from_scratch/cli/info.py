"""`llm-from-scratch info`: what this machine offers the book (versions, device, threads, cache)."""

from __future__ import annotations

import argparse
import os
import platform


def environment_report() -> dict[str, str]:
    """Facts a reader needs to compare their timings with the book's: software versions and hardware."""
    import torch

    from llm_from_scratch import __version__
    from llm_from_scratch.utils import autocast_dtype, cache_dir, pick_device

    device = pick_device()
    return {
        "llm_from_scratch": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "autocast dtype": str(autocast_dtype(device)).replace("torch.", ""),
        "cpu cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "cache": str(cache_dir()),
    }


def _run(args: argparse.Namespace) -> int:
    for key, value in environment_report().items():
        print(f"{key:>17}: {value}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="print versions, the device the book will use, and the cache path")
    p.set_defaults(func=_run)
