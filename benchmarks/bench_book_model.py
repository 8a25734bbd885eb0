"""The `book` preset's pretraining run: validation bits per byte, training seconds, parameters and tokens.

    python benchmarks/bench_book_model.py            # trains it in a fresh temporary cache (minutes on 2 cores)
    python benchmarks/bench_book_model.py --cached   # reads the run cached under $LLM_FROM_SCRATCH_CACHE

The tokenizer and shards are reused from the cache either way (they are not what this measures). The last line
printed is one JSON object: `{"val_bpb", "pretrain_seconds", "params", "tokens"}`; `pretrain_seconds` is the time
spent in training steps (evaluation, sampling and checkpoints excluded), as the trainer logs it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="read the cached run instead of training")
    args = parser.parse_args()

    from llm_from_scratch.pipeline import Artifacts

    art = Artifacts("book", progress=not args.cached)
    if args.cached:
        if not art.done("pretrain"):
            raise SystemExit(f"no finished book pretraining run at {art.dir('pretrain')}; run without --cached")
        metrics = art.stage_metrics("pretrain")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-book-"))
        try:
            for name in ("tokenizer", "shards"):  # link the data stages; train the model from scratch
                src = art.ensure(name)
                (tmp / src.name).symlink_to(src, target_is_directory=True)
            fresh = Artifacts("book", root=tmp, progress=True)
            metrics = fresh.stage_metrics("pretrain")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "val_bpb": round(metrics["val_bpb"], 4),
                "pretrain_seconds": round(metrics["train_seconds"], 1),
                "params": metrics["parameters"],
                "tokens": metrics["tokens"],
            }
        )
    )


if __name__ == "__main__":
    main()
