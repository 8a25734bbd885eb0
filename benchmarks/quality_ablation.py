"""Write `benchmarks/results/quality_ablation.json`: the book corpus curated with the learned quality classifier off
and on (everything else equal), the same small byte-level model trained for the same number of tokens on each, and
its bits per byte on one held-out text (the validation split of the classifier-off corpus, left out of both
training sets). Each variant is trained with several seeds, so the spread between seeds says what is noise.

    .venv/bin/python benchmarks/quality_ablation.py --seeds 3 --steps 200

The model reads bytes (vocabulary 256), so its mean loss in nats divided by ln 2 is bits per byte and no tokenizer
trained on one corpus or the other favours either. Chapter `02_quality_filters` reads the file.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.transformer import Transformer, count_parameters
from llm_from_scratch.pipeline.resolver import Artifacts
from llm_from_scratch.tokenizer.shards import doc_hash, validation_threshold
from llm_from_scratch.utils import atomic_path

OUT = Path(__file__).parent / "results" / "quality_ablation.json"
VARIANTS = {"off": {}, "on": {"data": {"pipeline": {"quality": "ours"}}}}
SEP = b"\n\n"


def corpus(overrides: dict) -> tuple[list[str], dict]:
    art = Artifacts("book", overrides=overrides)
    with art.corpus_path().open() as f:
        docs = [json.loads(line) for line in f]
    info = {"documents": len(docs), "bytes": sum(len(d["text"].encode()) for d in docs), "key": art.key("curate")}
    return [d["text"] for d in docs], {**info, "ids": [d["id"] for d in docs]}


def as_bytes(texts: list[str]) -> np.ndarray:
    return np.frombuffer(SEP.join(t.encode("utf-8") for t in texts), dtype=np.uint8).astype(np.int64)


@torch.no_grad()
def bits_per_byte(model: Transformer, val: np.ndarray, ctx: int) -> float:
    """Mean next-byte loss over every non-overlapping window of the held-out text, in bits."""
    model.eval()
    n = (len(val) - 1) // ctx
    x = torch.from_numpy(val[: n * ctx].reshape(n, ctx))
    y = torch.from_numpy(val[1 : n * ctx + 1].reshape(n, ctx))
    total = 0.0
    for i in range(0, n, 64):
        _, loss = model(x[i : i + 64], y[i : i + 64], return_logits=False)
        total += float(loss) * len(x[i : i + 64])
    model.train()
    return total / n / math.log(2)


def train(data: np.ndarray, val: np.ndarray, config: ModelConfig, args, seed: int) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Transformer(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    ctx, warmup = config.context_length, max(args.steps // 10, 1)
    t0 = time.perf_counter()
    for step in range(args.steps):
        lr = args.lr * min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = rng.integers(0, len(data) - ctx - 1, size=args.batch)
        x = torch.from_numpy(np.stack([data[s : s + ctx] for s in starts]))
        y = torch.from_numpy(np.stack([data[s + 1 : s + ctx + 1] for s in starts]))
        _, loss = model(x, y, return_logits=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return {
        "seed": seed,
        "train_loss_last": round(float(loss.detach()), 4),
        "val_bpb": round(bits_per_byte(model, val, ctx), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--val-bytes", type=int, default=1 << 17)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start, load0 = time.perf_counter(), os.getloadavg()

    corpora = {name: corpus(over) for name, over in VARIANTS.items()}
    off_texts = corpora["off"][0]
    hashes = [doc_hash(t) for t in off_texts]
    threshold = validation_threshold(hashes, 0.05)  # the book's own split (shards.val_fraction = 0.05)
    val_docs = [t for t, h in zip(off_texts, hashes, strict=True) if h <= threshold]
    held = {doc_hash(t) for t in val_docs}
    val = as_bytes(sorted(val_docs, key=doc_hash))[: args.val_bytes + 1]

    config = ModelConfig(
        vocab_size=256, context_length=128, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=384
    )
    rows = []
    for name, (texts, info) in corpora.items():
        train_texts = [t for t in texts if doc_hash(t) not in held]
        data = as_bytes(train_texts)
        for seed in range(args.seeds):
            row = {"variant": f"classifier {name}", **train(data, val, config, args, seed)}
            row.update(documents=info["documents"], train_bytes=len(data))
            rows.append(row)
            print(json.dumps(row), flush=True)

    summary = {}
    for name in VARIANTS:
        bpb = [r["val_bpb"] for r in rows if r["variant"] == f"classifier {name}"]
        summary[name] = {
            "mean_bpb": round(statistics.mean(bpb), 4),
            "sd_bpb": round(statistics.stdev(bpb), 4) if len(bpb) > 1 else None,
        }
    result = {
        "command": "python benchmarks/quality_ablation.py " + " ".join(sys.argv[1:]),
        "what": "validation bits per byte, classifier off vs on, equal training tokens",
        "corpora": {name: {k: v for k, v in info.items() if k != "ids"} for name, (_, info) in corpora.items()},
        "removed_by_classifier": sorted(set(corpora["off"][1]["ids"]) - set(corpora["on"][1]["ids"])),
        "validation": {"documents": len(val_docs), "bytes": int(len(val) - 1), "from": "classifier-off corpus"},
        "model": {**config.to_dict(), "parameters": count_parameters(config)},
        "train": {
            "steps": args.steps,
            "batch": args.batch,
            "context": config.context_length,
            "tokens_per_run": args.steps * args.batch * config.context_length,
            "lr": args.lr,
            "seeds": args.seeds,
            "threads": 1,
        },
        "rows": rows,
        "summary": summary,
        "difference_on_minus_off": round(summary["on"]["mean_bpb"] - summary["off"]["mean_bpb"], 4),
        "seconds_total": round(time.perf_counter() - t_start, 1),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average_start": [round(x, 2) for x in load0],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
