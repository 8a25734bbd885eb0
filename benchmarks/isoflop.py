"""IsoFLOP profiles of the book's model family on the book's shards (Hoffmann et al. 2022, approach 2).

    .venv/bin/python benchmarks/isoflop.py [--jobs 2] [--out benchmarks/results/isoflop.json]

Trains every (budget, shape) pair of the grid below with `llm_from_scratch.experiments.scaling.RECIPE` (one thread
per run, `--jobs` runs at a time), fits a parabola of final validation loss against log10 N per budget, and a
power law through the optima to extrapolate N*(C) and T*(C) to the budget of the `book` pretraining run. Writes
every row, the fits, the grid, the command and the wall time to the JSON file; the last line printed is a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Budgets in training FLOPs and the shapes (d_model, n_layers) trained at each: six sizes, 0.27M to 2.8M parameters
# (the smallest budgets a shared 2-core machine affords; the book run's budget is an extrapolation).
GRID = {
    4e11: [(32, 1), (48, 1), (64, 1), (96, 2), (128, 2), (192, 3)],
    1.2e12: [(32, 1), (48, 1), (64, 1), (96, 2), (128, 2), (192, 3)],
}
# The shape retrained with the AdamW-cosine recipe by --baseline (the best of the first, 4-size grid)
BASELINE = (64, 1)


def _point(args: tuple[float, int, int]) -> dict:
    import torch

    torch.set_num_threads(1)
    from llm_from_scratch.experiments.scaling import Shape, run_point
    from llm_from_scratch.pipeline import Artifacts

    budget, d, layers = args
    t0 = time.perf_counter()
    row = run_point(Shape(d, layers), budget, Artifacts("book").token_data())
    row["wall_s"] = time.perf_counter() - t0
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "isoflop.json")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="only add to --out the BASELINE shape at the largest budget retrained with plain AdamW and a cosine "
        "(the recipe of the first book preset), to measure what the sweep's recipe buys",
    )
    parser.add_argument("--reuse", action="store_true", help="keep the rows already in --out, train only new points")
    args = parser.parse_args()
    if args.baseline:
        add_baseline(args.out)
        return

    from llm_from_scratch.experiments.scaling import RECIPE, describe, fit_profile, power_law, predict
    from llm_from_scratch.pipeline import Artifacts

    art = Artifacts("book")
    art.token_data()  # build the shards once, before the workers ask for them
    t0 = time.perf_counter()
    old = json.loads(args.out.read_text()) if args.reuse and args.out.exists() else {}
    kept = {(r["budget"], r["d_model"], r["n_layers"]): r for r in old.get("rows", [])}
    jobs = [(b, d, n) for b, shapes in GRID.items() for d, n in shapes if (b, d, n) not in kept]
    jobs.sort(key=lambda j: -j[0] * 1.0)  # the big budget first, so the pool ends with short runs
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(_point, jobs))
    rows = sorted([*kept.values(), *rows], key=lambda r: (r["budget"], r["params"]))
    wall = time.perf_counter() - t0 + old.get("wall_s", 0.0)  # the whole grid's wall time, over its runs

    fits = {}
    for budget in GRID:
        group = sorted((r for r in rows if r["budget"] == budget), key=lambda r: r["params"])
        fit = fit_profile(group)
        fit["t_opt"] = budget / (6 * fit["n_opt"])
        fits[str(budget)] = fit
    budgets = list(GRID)
    n_law = power_law(budgets, [fits[str(b)]["n_opt"] for b in budgets])

    # the book run's budget: its model's FLOPs per token times the tokens its preset trains on
    book = art.config
    model = book.model
    info = describe(model)
    pre = book.pretrain
    book_tokens = pre.max_steps * pre.batch_size * pre.grad_accum * model.context_length
    book_budget = info["flops_per_token"] * book_tokens
    n_star = predict(n_law, book_budget)
    result = {
        "command": "python benchmarks/isoflop.py --jobs " + str(args.jobs),
        "wall_s": wall,
        "jobs": args.jobs,
        "recipe": RECIPE.to_dict(),
        "grid": {str(b): s for b, s in GRID.items()},
        "n_definition": "total parameters, the tied embedding included",
        "rows": rows,
        "fits": fits,
        "n_opt_law": n_law,
        "book": {
            **info,
            "budget": book_budget,
            "tokens": book_tokens,
            "n_opt_extrapolated": n_star,
            "t_opt_extrapolated": book_budget / (6 * n_star),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {"wall_s": round(wall), "n_opt": {b: round(f["n_opt"]) for b, f in fits.items()},
               "book_budget": book_budget, "n_opt_book": round(n_star)}  # fmt: skip
    print(json.dumps(summary))


def add_baseline(path: Path) -> None:
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from llm_from_scratch.experiments.scaling import RECIPE, Shape, run_point
    from llm_from_scratch.pipeline import Artifacts

    result = json.loads(path.read_text())
    budget = max(float(b) for b in result["fits"])
    d, layers = BASELINE
    best = next(r for r in result["rows"] if r["budget"] == budget and (r["d_model"], r["n_layers"]) == BASELINE)
    adamw = dataclasses.replace(RECIPE, optimizer="adamw", peak_lr=1e-3, warmup_frac=0.02, schedule="cosine")
    t0 = time.perf_counter()
    row = run_point(Shape(d, layers), budget, Artifacts("book").token_data(), adamw)
    row.update(wall_s=time.perf_counter() - t0, recipe=adamw.to_dict(), compared_with=best["val_loss"])
    result["baseline"] = row
    result["baseline_command"] = "python benchmarks/isoflop.py --baseline"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"adamw_cosine_val_loss": row["val_loss"], "recipe_val_loss": best["val_loss"]}))


if __name__ == "__main__":
    main()
