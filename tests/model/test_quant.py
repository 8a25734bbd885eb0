"""Weight-only quantization: the quantizers against torch's and gguf's, the kernel against the PyTorch fallback,
and a quantized model against the fp32 one."""

import numpy as np
import pytest
import torch

from llm_from_scratch.model import ModelConfig, Transformer
from llm_from_scratch.model import quant as Q


def test_int8_matches_torch_per_channel_quantization():
    w = torch.randn(48, 96)
    q, scale = Q.quantize_int8(w)
    with pytest.warns(UserWarning):  # deprecated in torch, but still the library's reference
        ref = torch.quantize_per_channel(w, scale.double(), torch.zeros(48, dtype=torch.long), 0, torch.qint8)
    assert torch.equal(q, ref.int_repr())
    assert (Q.dequantize_int8(q, scale) - w).abs().max() <= scale.max() / 2 + 1e-6  # half a step at most


def test_q4_layout_is_ggml_q4_1():
    gguf = pytest.importorskip("gguf")
    w = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    raw = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_1).reshape(8, 2, 20)
    d = torch.from_numpy(raw[..., 0:2].copy().view(np.float16).astype(np.float32)[..., 0])
    m = torch.from_numpy(raw[..., 2:4].copy().view(np.float16).astype(np.float32)[..., 0])
    packed = torch.from_numpy(raw[..., 4:].reshape(8, 32).copy())
    ref = gguf.quants.dequantize(raw.reshape(8, 40), gguf.GGMLQuantizationType.Q4_1)
    assert np.array_equal(Q.dequantize_q4(packed, d, m).numpy(), ref)
    ours = Q.dequantize_q4(*Q.quantize_q4(torch.from_numpy(w)))
    assert (ours - torch.from_numpy(w)).abs().max() <= float((torch.from_numpy(w).abs().max() * 2) / 15 / 2) + 1e-5


@pytest.mark.parametrize("kind", ["fp32", "int8", "q4"])
def test_kernel_equals_fallback(kind):
    if Q.load_kernel() is None:
        pytest.skip("no C++ compiler here: the kernel is not built (the PyTorch fallback is what runs)")
    w = torch.randn(200, 320)
    fast, slow = Q.QUANTIZERS[kind](w, use_kernel=True), Q.QUANTIZERS[kind](w, use_kernel=False)
    for rows in (1, 3):
        x = torch.randn(1, rows, 320)
        torch.testing.assert_close(fast(x), slow(x), rtol=1e-5, atol=1e-4)
    x = torch.randn(1, 9, 320)  # prefill-sized: both take the dequantize + F.linear path
    assert torch.equal(fast(x), slow(x))


@pytest.mark.parametrize(("kind", "tol"), [("fp32", 1e-4), ("int8", 0.05), ("q4", 0.5)])
def test_quantized_model_stays_close(kind, tol):
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=512, context_length=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=192
    )
    model = Transformer(config).eval()
    ids = torch.randint(0, 512, (1, 16))
    with torch.inference_mode():
        ref = model(ids)[0]
        bytes_before = Q.weight_bytes(model)
        qm = Q.quantize_model(model, kind)
        out = qm(ids)[0]
    assert (out - ref).abs().max().item() < tol
    ratio = Q.weight_bytes(qm) / bytes_before
    assert {"fp32": 0.99 <= ratio <= 1.01, "int8": ratio < 0.3, "q4": ratio < 0.2}[kind]
    with pytest.raises(ValueError, match="unknown quantization"):
        Q.quantize_model(model, "int3")
