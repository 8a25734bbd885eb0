"""Measurements of chapter 17 and `benchmarks/bench_inference.py`: bits per byte of any model + tokenizer on
real text, decode speed, the machine's read bandwidth, greedy agreement, tokenizer agreement with `tokenizers`."""

from __future__ import annotations

import copy
import itertools
import math
import statistics
import time

import torch
import torch.nn.functional as F

from llm_from_scratch.model.generate import generate, stream
from llm_from_scratch.model.quant import quantize_model, weight_bytes


def validation_text(max_chars: int = 40_000) -> str:
    """Held-out-style real text neither model was tuned on here: the opening of gensim's ABC news articles and of
    its Wikipedia sample (the same sources the book's corpus draws from), `max_chars` of each."""
    from llm_from_scratch.data.sources import news_articles, wikipedia_sample

    news = "\n\n".join(d.text for d in itertools.islice(news_articles(), 200))[:max_chars]
    wiki = "\n\n".join(d.text for d in itertools.islice(wikipedia_sample(), 20))[:max_chars]
    return news + "\n\n" + wiki


@torch.inference_mode()
def bits_per_byte(model, tokenizer, text: str, window: int = 256, max_windows: int = 16) -> float:
    """Cross-entropy in bits per UTF-8 byte of the predicted tokens, over non-overlapping windows of `text`.

    Bits per byte compares models whose tokenizers differ: a token's loss is charged to the bytes it spells.
    """
    ids = tokenizer.encode(text)
    window = min(window, model.config.context_length - 1)
    starts = range(0, max(len(ids) - window - 1, 1), window)[:max_windows]
    nats, n_bytes = 0.0, 0
    for s in starts:
        chunk = torch.tensor([ids[s : s + window + 1]])
        logits, _ = model(chunk[:, :-1])
        targets = chunk[0, 1:]
        nats += F.cross_entropy(logits[0].float(), targets, reduction="sum").item()
        n_bytes += sum(len(tokenizer.vocab[int(t)]) for t in targets)
    return nats / math.log(2) / n_bytes


def quantized_copy(model, kind: str):
    """A copy of `model` with its linear layers replaced (`"fp32"` kernel, `"int8"`, `"q4"`)."""
    return quantize_model(copy.deepcopy(model), kind)


def decode(model, prompt_ids: list[int], new_tokens: int) -> tuple[list[int], float]:
    """Greedy tokens after `prompt_ids` and the decode speed in tokens/s (prefill excluded): the time from the
    first to the last generated token of one run. (A prefill timed in a separate run and subtracted can exceed the
    decode's share on a busy machine and give nonsense.)"""
    idx = torch.tensor([prompt_ids])
    generate(model, idx, 1)  # warm-up: caches, kernels, the helper thread
    ids, stamps = [], []
    for tok in stream(model, idx, new_tokens):
        ids.append(int(tok[0]))
        stamps.append(time.perf_counter())
    return ids, (new_tokens - 1) / (stamps[-1] - stamps[0])


def hf_decode(hf_model, prompt_ids: list[int], new_tokens: int) -> tuple[list[int], float]:
    """The same for Hugging Face `generate` (greedy, KV cache, no stop token), timed by a streamer."""
    from transformers.generation.streamers import BaseStreamer

    class Stamps(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    idx = torch.tensor([prompt_ids])
    kw = {"do_sample": False, "pad_token_id": 0, "eos_token_id": None}
    with torch.inference_mode():
        hf_model.generate(idx, max_new_tokens=1, min_new_tokens=1, **kw)
        stamps = Stamps()
        out = hf_model.generate(idx, max_new_tokens=new_tokens, min_new_tokens=new_tokens, streamer=stamps, **kw)
    t = stamps.times[1:]  # the first put is the prompt
    return out[0, len(prompt_ids) :].tolist(), (new_tokens - 1) / (t[-1] - t[0])


def read_bandwidth(gib: float = 1.0, trials: int = 5) -> float:
    """The machine's streaming read bandwidth in bytes/s: the median time to sum a `gib` GiB fp32 tensor (far
    larger than any cache), at the current `torch` thread count."""
    big = torch.ones(int(gib * 2**30) // 4)
    big.sum()
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        big.sum()
        times.append(time.perf_counter() - start)
    return big.numel() * 4 / statistics.median(times)


def agreement(a: list[int], b: list[int]) -> float:
    """The fraction of `a` that `b` reproduces before the first difference (greedy outputs diverge for good)."""
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return n / max(len(a), 1)


def bytes_per_token(model) -> int:
    return weight_bytes(model)


def reference_tokenizer(metadata: dict):
    """Hugging Face `tokenizers` built from the GGUF file's vocabulary, merges and control tokens, with SmolLM2's
    own pre-tokenizer (its `tokenizer.json`: single digits, then GPT-2's byte-level regex)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ")) for m in metadata["tokenizer.ggml.merges"]]
    ref = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    ref.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    control = [t for t, k in zip(tokens, metadata["tokenizer.ggml.token_type"], strict=True) if k == 3]
    ref.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    return ref


def tokenizer_mismatches(ours, reference, texts: list[str]) -> tuple[int, int]:
    """`(documents whose ids differ, tokens compared)` between our tokenizer and a `tokenizers` one."""
    theirs = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    mine = [ours.encode(t) for t in texts]
    return sum(a != b for a, b in zip(mine, theirs, strict=True)), sum(map(len, mine))
