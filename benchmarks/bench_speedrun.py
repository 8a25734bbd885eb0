"""CPU speedrun: wall time to nanoGPT's validation loss of 1.88 on tiny-shakespeare (character level), nanoGPT's
recipe on a GPT-2-style model against the book's trainer with its two best recipes, raced in the same process:
`BEST`, the fastest to the reference's own final loss, and `BEST_TO_TARGET`, the fastest to 1.88 itself.

Both train on one thread, alternating a tenth of their budgets at a time (exact stop/resume), so background load
hits both alike; the time counts training steps only (evaluations excluded, for both). The reference is nanoGPT's
CPU run: 4 layers, 4 heads, 128 dims, context 64, batch 12, lr 1e-3, dropout 0, 2000 iterations; the last 10 % of
the text is the validation split. On the book's fixed validation windows the reference ends above 1.88, so
`time_ratio` (both at 1.88) is null; `time_ratio_at_reference_final` races to the loss the reference does reach, and
`time_ratio_at_target_upper_bound` divides our seconds to 1.88 by the reference's whole run (it needs longer).

    .venv/bin/python benchmarks/bench_speedrun.py                       # about 4 minutes on one quiet core
    .venv/bin/python benchmarks/bench_speedrun.py --data ../shared/data/tinyshakespeare.txt

The last line printed is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: idle threads must not spin

import argparse
import json
import time
from pathlib import Path

from llm_from_scratch.experiments.speedrun import (
    BEST,
    BEST_TO_TARGET,
    REFERENCE,
    TARGET_VAL_LOSS,
    add_ratios,
    race,
    speedrun_data,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="tinyshakespeare.txt (default: ../shared/data/...)")
    ap.add_argument("--target", type=float, default=TARGET_VAL_LOSS)
    ap.add_argument("--eval-every", type=int, default=25, help="steps between validation evaluations")
    ap.add_argument("--rounds", type=int, default=10, help="alternation rounds (each run advances 1/rounds)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    data = speedrun_data(args.data)
    print(f"tiny-shakespeare: {len(data.train):,} train / {len(data.val):,} val characters, vocab {data.vocab_size}")
    t0 = time.perf_counter()
    ref, ours, to_target = race(
        [REFERENCE, BEST, BEST_TO_TARGET],
        data,
        args.target,
        eval_every=args.eval_every,
        rounds=args.rounds,
        threads=args.threads,
    )
    for r in (ref, ours, to_target):
        print(
            f"{r['name']:>60}: {r['steps']} steps, val {r['final_val_loss']:.4f}, "
            f"{r['seconds_to_target']} s to {args.target} (step {r['steps_to_target']}), {r['seconds_total']} s total"
        )
    finish = add_ratios([ref, ours, to_target])  # the reference may end above 1.88: also the time to its own loss
    print(
        json.dumps(
            {
                "target_val_loss": args.target,
                "reference_seconds_to_target": ref["seconds_to_target"],
                "ours_seconds_to_target": ours["seconds_to_target"],
                "time_ratio": ours["time_ratio"],
                "ours_final_val_loss": ours["final_val_loss"],
                "reference_final_val_loss": ref["final_val_loss"],
                "reference_seconds_to_final": finish["reference_seconds_to_final"],
                "ours_seconds_to_reference_final": ours["seconds_to_reference_final"],
                "time_ratio_at_reference_final": ours["time_ratio_at_reference_final"],
                "reference_steps_to_target": ref["steps_to_target"],
                "ours_steps_to_target": ours["steps_to_target"],
                "ours_recipe": ours["name"],
                "to_target_recipe": to_target["name"],
                "to_target_seconds": to_target["seconds_to_target"],
                "to_target_final_val_loss": to_target["final_val_loss"],
                "time_ratio_at_target_upper_bound": to_target["time_ratio_at_target_upper_bound"],
                "reference_seconds_total": ref["seconds_total"],
                "threads": args.threads,
                "eval_every": args.eval_every,
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
