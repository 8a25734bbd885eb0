"""Our Transformer vs Hugging Face `LlamaForCausalLM` with the same weights, same thread count, same run, CPU.

Measures training tokens/s (forward + backward + AdamW step) at equal settings (fp32 eager) and at each side's
best settings (bf16 autocast and/or torch.compile, tried on both), KV-cached greedy generation tokens/s against
HF `generate` (with the floor set by one token's matmuls alone, which stream every weight from memory), and MFU
against the matmul peak measured in the same run. Ours and HF alternate in rounds and the
median round counts, so load from other processes hits both sides alike. The last line printed is one JSON object.

    python benchmarks/bench_model.py [--configs book small] [--steps 6] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch

from llm_from_scratch.model import PRESETS, Transformer, flops_per_token, generate
from llm_from_scratch.model.hf import to_hf_model


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 5, trials: int = 5) -> float:
    """FLOP/s of a square `n x n` matmul (best of `trials`): the practical peak MFU is measured against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 * reps / best


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_train_step(model, is_hf: bool, bf16: bool, compile_: bool):
    """One optimiser step on a batch; HF gets its labels (it shifts them itself), ours gets shifted targets."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=False, foreach=True)
    forward = torch.compile(model) if compile_ else model

    def step(idx: torch.Tensor) -> None:
        with _autocast(bf16):
            if is_hf:
                loss = forward(input_ids=idx, labels=idx).loss
            else:  # our training path: the head and the loss fused (model/loss.py), no logits kept
                _, loss = forward(idx[:, :-1], idx[:, 1:], return_logits=False)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def time_steps(step, idx: torch.Tensor, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        step(idx)
    return time.perf_counter() - t


def bench_training(config, batch: int, steps: int, rounds: int, settings: dict[str, tuple[bool, bool]]) -> dict:
    """tokens/s of ours and HF under each named setting (bf16, compile), alternating in rounds."""
    results = {}
    idx = torch.randint(
        0, config.vocab_size, (batch, config.context_length + 1), generator=torch.Generator().manual_seed(0)
    )
    tokens = batch * config.context_length
    for name, (bf16, compile_) in settings.items():
        torch.manual_seed(0)
        ours = Transformer(config)
        hf = to_hf_model(ours).train()  # SDPA attention, the same weights
        step_ours = make_train_step(ours.train(), False, bf16, compile_)
        step_hf = make_train_step(hf, True, bf16, compile_)
        try:
            for s in (step_ours, step_hf):  # warm-up (and compilation)
                time_steps(s, idx, 2)
        except Exception as err:  # e.g. a compiler failure on one side: record it, keep the other settings
            results[name] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
            print(name, results[name], flush=True)
            continue
        t_ours, t_hf = [], []
        for _ in range(rounds):
            t_ours.append(time_steps(step_ours, idx, steps))
            t_hf.append(time_steps(step_hf, idx, steps))
        results[name] = {
            "ours_tok_s": round(tokens * steps / statistics.median(t_ours), 1),
            "hf_tok_s": round(tokens * steps / statistics.median(t_hf), 1),
        }
        results[name]["ratio"] = round(results[name]["ours_tok_s"] / results[name]["hf_tok_s"], 3)
        print(name, results[name], flush=True)
    return results


@torch.inference_mode()
def bench_generation(config, prompt_len: int, new_tokens: int, rounds: int) -> dict:
    torch.manual_seed(0)
    ours = Transformer(config).eval()
    hf = to_hf_model(ours).eval()
    prompt = torch.randint(1, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1))

    def run_ours():
        return generate(ours, prompt, new_tokens, temperature=0.0)

    def run_hf():
        return hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )

    # The floor: one token's matmuls alone (every weight matrix read once, batch 1). On a CPU they stream the
    # weights from memory, so no implementation of this model can decode faster than this in fp32.
    weights = [m.weight for m in ours.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(1, 1, w.shape[1]) for w in weights]

    def matmuls_only():
        for _ in range(new_tokens):
            for w, x in zip(weights, inputs, strict=True):
                torch.nn.functional.linear(x, w)

    same = torch.equal(run_ours(), run_hf())
    matmuls_only()
    t_floor = []
    for _ in range(rounds):
        t = time.perf_counter()
        matmuls_only()
        t_floor.append(time.perf_counter() - t)
    t_ours, t_hf = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        run_ours()
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_hf()
        t_hf.append(time.perf_counter() - t)
    out = {
        "ours_tok_s": round(new_tokens / statistics.median(t_ours), 1),
        "hf_tok_s": round(new_tokens / statistics.median(t_hf), 1),
        "identical_tokens": same,
        "matmul_floor_tok_s": round(new_tokens / statistics.median(t_floor), 1),
    }
    out["ratio"] = round(out["ours_tok_s"] / out["hf_tok_s"], 3)
    out["max_possible_ratio"] = round(out["matmul_floor_tok_s"] / out["hf_tok_s"], 3)  # the floor vs HF
    print("generation", out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["book", "small"], choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="the same for both (1 is robust on a shared machine)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile settings (faster)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    settings = {"fp32_eager": (False, False), "bf16_eager": (True, False)}
    if not args.no_compile:
        settings |= {"fp32_compile": (False, True), "bf16_compile": (True, True)}
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print("matmul peak GFLOP/s", {k: round(v / 1e9, 1) for k, v in peaks.items()}, flush=True)
    report: dict = {"threads": args.threads, "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()}}
    for name in args.configs:
        config = PRESETS[name]
        print(f"== {name}: {Transformer(config).num_parameters():,} parameters", flush=True)
        train = bench_training(config, args.batch, args.steps, args.rounds, settings)
        train_ok = {s: r for s, r in train.items() if "error" not in r}
        best_ours = max(train_ok, key=lambda s: train_ok[s]["ours_tok_s"])
        best_hf = max(train_ok, key=lambda s: train_ok[s]["hf_tok_s"])
        gen = bench_generation(config, 16, args.new_tokens, args.rounds)
        report[name] = {
            "parameters": Transformer(config).num_parameters(),
            "train_flops_per_token": flops_per_token(config),
            "train": train,
            "equal_settings_ratio": train["fp32_eager"]["ratio"],
            "best_settings": {"ours": best_ours, "hf": best_hf},
            "best_settings_ratio": round(train[best_ours]["ours_tok_s"] / train[best_hf]["hf_tok_s"], 3),
            "generation": gen,
        }
    # the peak again at the end, keeping the larger: MFU against a peak measured in a quiet moment
    for key, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        report["peak_gflops"][key] = round(max(report["peak_gflops"][key], matmul_peak(dtype) / 1e9), 1)
    for name in args.configs:  # MFU = achieved model FLOP/s / matmul peak of the same precision
        fpt = report[name]["train_flops_per_token"]
        for setting, r in report[name]["train"].items():
            if "error" not in r:
                peak = 1e9 * report["peak_gflops"]["bf16" if setting.startswith("bf16") else "fp32"]
                r["ours_mfu"] = round(r["ours_tok_s"] * fpt / peak, 4)
                r["hf_mfu"] = round(r["hf_tok_s"] * fpt / peak, 4)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
