"""Bytes communicated per training step by each parallelism, measured vs the derived ring-algorithm formula.

A 2-process gloo job (`torchrun --standalone --nproc_per_node=2`) trains the book's model with data parallelism
(from scratch and `DistributedDataParallel`), FSDP2, and tensor parallelism (from scratch and DTensor). "Measured"
is the number of bytes each process handed to its sockets during the steps (`wchar` of `/proc/self/io`,
headers included, max over ranks); "formula" is `llm_from_scratch.distributed.comm`. The baseline for our
from-scratch DDP and TP is PyTorch's DDP and DTensor in the same run. The last line printed is one JSON object.

    python benchmarks/bench_distributed.py [--preset book] [--batch 8] [--seq 128] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import platform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="book")
    parser.add_argument("--batch", type=int, default=8, help="global batch (sequences)")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="measured steps per strategy (after one warm-up)")
    parser.add_argument("--timeout", type=float, default=540.0)
    args = parser.parse_args()

    from llm_from_scratch.distributed.launch import run_torchrun

    cmd = ["-m", "llm_from_scratch.experiments.distributed_harness", "bench", "--preset", args.preset,
           "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps)]  # fmt: skip
    proc = run_torchrun(cmd, nproc_per_node=2, timeout_s=args.timeout)
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    strategies = result["strategies"]
    print(f"{result['n_params']:,} parameters, 2 ranks ({result['backend']}), batch {args.batch} x {args.seq} tokens")
    print(f"{'strategy':<13}{'measured MB':>13}{'formula MB':>12}{'ratio':>8}{'s/step':>8}")
    for name, s in strategies.items():
        print(f"{name:<13}{s['measured_bytes'] / 1e6:>13.3f}{s['formula_bytes'] / 1e6:>12.3f}{s['ratio']:>8.4f}"
              f"{s['seconds_per_step']:>8.3f}")  # fmt: skip
    ratios = {name: s["ratio"] for name, s in strategies.items()}
    summary = {
        "benchmark": "distributed",
        "machine": platform.processor() or platform.machine(),
        **{k: result[k] for k in ("world_size", "backend", "n_params", "batch", "seq")},
        "measured_bytes": {n: s["measured_bytes"] for n, s in strategies.items()},
        "formula_bytes": {n: s["formula_bytes"] for n, s in strategies.items()},
        "ratio_measured_to_formula": ratios,
        "seconds_per_step": {n: s["seconds_per_step"] for n, s in strategies.items()},
        "ddp_scratch_time_vs_torch": strategies["ddp_scratch"]["seconds_per_step"]
        / strategies["ddp_torch"]["seconds_per_step"],
        "tp_scratch_time_vs_dtensor": strategies["tp_scratch"]["seconds_per_step"]
        / strategies["tp_dtensor"]["seconds_per_step"],
        "all_within_10pct": all(0.9 <= r <= 1.1 for r in ratios.values()),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
