"""How the `book` pretraining run's wall-clock budget is best spent, measured at that budget itself.

The IsoFLOP grid (`benchmarks/isoflop.py`) works at budgets a hundred times smaller, where the smallest models win;
on a CPU the budget is seconds, not FLOPs, and small matrices run far below the machine's peak, so this experiment
trains full-size candidates of the book's run for about the same training time and compares their validation bits
per byte (the same validation split for every row; bits per byte does not depend on the tokenizer). Each row is a
cached pretraining stage of the resolver (`Artifacts("book").replace(...)`), pinned by its own overrides, so
rerunning the command retrains only rows it has not built before.

    .venv/bin/python benchmarks/book_budget.py                 # about 12 minutes per row on 2 quiet cores
    .venv/bin/python benchmarks/book_budget.py --rows 0 2      # some rows only (the others are kept from --out)

Writes `benchmarks/results/book_budget.json` (the command, each row's overrides, final bits per byte, training
seconds, tokens and its validation curve against training seconds); the last line printed is a summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The recipe every row shares unless it says otherwise: Muon for the hidden matrices, AdamW for the rest,
# warmup-stable-decay, batch 12 x 256 tokens. Pinned here (not read from the preset), so a row keeps its cache key
# and its meaning when the preset moves.
BASE = {
    "model": {"vocab_size": 8192, "d_model": 256, "n_layers": 4, "tie_embeddings": True},
    "pretrain": {
        "batch_size": 12,
        "optimizer": "muon",
        "muon_lr": 0.02,
        "peak_lr": 3e-3,
        "schedule": "wsd",
        "decay_frac": 0.3,
        "sampling": "random",
    },
}
ROWS: list[tuple[str, dict]] = [
    ("8192 tokens, 4 blocks, 400 steps (the former preset)", {"pretrain": {"max_steps": 400}}),
    ("8192 tokens, 600 steps", {"pretrain": {"max_steps": 600}}),
    (
        "4096 tokens, 750 steps (the time of 600 at 8192)",
        {"tokenizer": {"vocab_size": 4096}, "model": {"vocab_size": 4096}, "pretrain": {"max_steps": 750}},
    ),
    (
        "8192 tokens, own head, AdamW 1e-2, 620 steps",
        {"model": {"tie_embeddings": False}, "pretrain": {"peak_lr": 1e-2, "max_steps": 620}},
    ),
    (
        "the same, 2 layers, 900 steps",
        {"model": {"tie_embeddings": False, "n_layers": 2}, "pretrain": {"peak_lr": 1e-2, "max_steps": 900}},
    ),
    (
        "the same, 2 layers, 1000 steps",
        {"model": {"tie_embeddings": False, "n_layers": 2}, "pretrain": {"peak_lr": 1e-2, "max_steps": 1000}},
    ),
    (
        "2 layers, 900 steps, every token once per epoch",
        {
            "model": {"tie_embeddings": False, "n_layers": 2},
            "pretrain": {"peak_lr": 1e-2, "max_steps": 900, "sampling": "epochs"},
        },
    ),
]


def overrides(row: dict) -> dict:
    """The row's overrides on top of BASE, section by section."""
    out = {name: dict(values) for name, values in BASE.items()}
    for name, values in row.items():
        out.setdefault(name, {}).update(values)
    return out


def measure(art) -> dict:
    """Final validation bits per byte, training seconds and tokens of a cached pretraining stage, with its curve
    (step, training seconds so far, validation bits per byte)."""
    from llm_from_scratch.train.trainer import LOG_FILE, read_log

    log = read_log(art.ensure("pretrain") / LOG_FILE)
    metrics = art.stage_metrics("pretrain")
    elapsed = {r["step"]: r["elapsed"] for r in log if "elapsed" in r}
    curve = [(r["step"], round(elapsed.get(r["step"], 0.0), 1), round(r["val_bpb"], 4)) for r in log if "val_bpb" in r]
    return {
        "val_bpb": round(metrics["val_bpb"], 4),
        "train_seconds": round(metrics["train_seconds"], 1),
        "tokens": metrics["tokens"],
        "params": metrics["parameters"],
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", help="indices into ROWS (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "book_budget.json")
    args = parser.parse_args()

    from llm_from_scratch.pipeline import Artifacts
    from llm_from_scratch.utils import atomic_path

    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    kept = {r["name"]: r for r in old.get("rows", [])}
    wanted = range(len(ROWS)) if args.rows is None else args.rows
    art = Artifacts("book", progress=True)
    t0 = time.perf_counter()
    rows = []
    for i, (name, row) in enumerate(ROWS):
        ov = overrides(row)
        if i in wanted or name not in kept or kept[name].get("overrides") != ov:
            variant = art.replace(**ov)
            rows.append({"name": name, "overrides": ov, "stage_key": variant.key("pretrain"), **measure(variant)})
            print(json.dumps({k: rows[-1][k] for k in ("name", "val_bpb", "train_seconds")}), flush=True)
        else:
            rows.append(kept[name])
    result = {
        "command": "python benchmarks/book_budget.py",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"platform": platform.platform(), "torch": __import__("torch").__version__},
        "wall_s_this_call": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({r["name"]: [r["val_bpb"], r["train_seconds"]] for r in rows}))


if __name__ == "__main__":
    main()
