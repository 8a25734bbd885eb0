"""Weight-only quantization of our `Transformer`: int8 per output channel and 4-bit groups, and the linear layers
that decode with them through a small C++ kernel (`csrc/qgemv.cpp`), with a pure-PyTorch fallback.

Only the weights are quantized; activations stay fp32. Batch-1 decoding reads every weight once per token and does
two FLOPs with it, so it is bound by memory bandwidth: a weight stored in 1 byte (int8) or half a byte (4-bit) is
read 4x or 8x faster than in fp32, if a kernel multiplies it without first writing an fp32 copy back to memory.

* int8 (LLM.int8()'s vector-wise scale without its outlier split, Dettmers et al. 2022): `s_n = max_k |W_nk| / 127`,
  `q_nk = round(W_nk / s_n)`, so `W ~ s q`; one scale per output row.
* 4-bit groups (GPTQ/AWQ-style group size 32, with ggml's Q4_1 asymmetric layout): per group of 32 inputs a scale
  `d = (max - min) / 15` and a minimum `m`, `q = round((w - m) / d)` in `0..15`, `w ~ d q + m`.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.model.transformer import Transformer

log = logging.getLogger(__name__)
GROUP = 32
_KERNEL: object | bool | None = False  # False: not tried yet; None: no compiler (fallback); else the module


def load_kernel():
    """The compiled `qgemv` extension (built once with `torch.utils.cpp_extension.load` into the artifact cache),
    or `None` when no C++ compiler works here, in which case the layers use their PyTorch fallback."""
    global _KERNEL
    if _KERNEL is not False:
        return _KERNEL
    from pathlib import Path

    from llm_from_scratch.utils import cache_dir

    src = Path(__file__).parent / "csrc" / "qgemv.cpp"
    build = cache_dir() / "kernels" / "qgemv"
    build.mkdir(parents=True, exist_ok=True)
    try:
        from torch.utils.cpp_extension import load

        _KERNEL = load(
            name="llm_from_scratch_qgemv",
            sources=[str(src)],
            extra_cflags=["-O3", "-march=native", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            build_directory=str(build),
            verbose=False,
        )
    except Exception as exc:  # no compiler, no headers: decoding still works, only slower
        log.warning("qgemv kernel not built (%s); using the PyTorch fallback", str(exc).splitlines()[0][:200])
        _KERNEL = None
    return _KERNEL


# ------------------------------------------------------------------------------------------------------ quantizers
def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(q int8 [N, K], scale fp32 [N])` with `w ~ scale[:, None] * q`, symmetric per output channel."""
    w = w.detach().float()
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


def quantize_q4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(packed uint8 [N, K/2], d fp32 [N, K/32], m fp32 [N, K/32])`: 4-bit groups of 32 in ggml's Q4_1 order
    (byte `j` of a group holds `q_j` in its low nibble, `q_{j+16}` in its high one)."""
    N, K = w.shape
    if K % GROUP:
        raise ValueError(f"4-bit groups need the input size {K} to be a multiple of {GROUP}")
    g = w.detach().float().reshape(N, K // GROUP, GROUP)
    lo, hi = g.amin(-1), g.amax(-1)
    d = (hi - lo) / 15.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    q = torch.round((g - lo[..., None]) * inv[..., None]).clamp_(0, 15).to(torch.uint8)
    packed = q[..., :16] | (q[..., 16:] << 4)
    return packed.reshape(N, K // 2).contiguous(), d.contiguous(), lo.contiguous()


def dequantize_q4(packed: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    N, half = packed.shape
    p = packed.reshape(N, half // 16, 16)
    q = torch.cat([p & 15, p >> 4], dim=-1).float()
    return (q * d[..., None] + m[..., None]).reshape(N, half * 2)


# ---------------------------------------------------------------------------------------------------- linear layers
class Int8Linear(nn.Module):
    """`y = x W^T` with `W` stored as int8 per output channel. Decode-sized inputs (a few rows) go through the
    kernel; longer inputs (prefill) and machines without the kernel dequantize the weight to fp32 first."""

    def __init__(self, weight: torch.Tensor, use_kernel: bool = True) -> None:
        super().__init__()
        q, scale = quantize_int8(weight)
        self.register_buffer("q", q)
        self.register_buffer("scale", scale)
        self.kernel = load_kernel() if use_kernel else None

    def weight_bytes(self) -> int:
        return self.q.numel() + 4 * self.scale.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if self.kernel is not None and rows <= 4 and x.device.type == "cpu" and x.dtype == torch.float32:
            return self.kernel.int8_gemv(x.reshape(rows, -1), self.q, self.scale).reshape(*x.shape[:-1], -1)
        return F.linear(x, dequantize_int8(self.q, self.scale).to(x.dtype))


class Q4Linear(nn.Module):
    """`y = x W^T` with `W` in 4-bit groups of 32 (scale and minimum per group); kernel or fallback as
    `Int8Linear`."""

    def __init__(self, weight: torch.Tensor, use_kernel: bool = True) -> None:
        super().__init__()
        packed, d, m = quantize_q4(weight)
        self.register_buffer("packed", packed)
        self.register_buffer("d", d)
        self.register_buffer("m", m)
        self.kernel = load_kernel() if use_kernel else None

    def weight_bytes(self) -> int:
        return self.packed.numel() + 4 * (self.d.numel() + self.m.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if self.kernel is not None and rows <= 4 and x.device.type == "cpu" and x.dtype == torch.float32:
            y = self.kernel.q4_gemv(x.reshape(rows, -1), self.packed, self.d, self.m)
            return y.reshape(*x.shape[:-1], -1)
        return F.linear(x, dequantize_q4(self.packed, self.d, self.m).to(x.dtype))


class F32Linear(nn.Module):
    """The same fp32 weight (shared, not copied), decode-sized inputs through our own row-parallel GEMV kernel.

    PyTorch's `F.linear` on one row reaches well under the memory bandwidth on this machine; the kernel streams
    each weight row once. Its sums run in a different order than BLAS's, so logits differ in the last bits: an
    opt-in path (`quantize_model` with `"fp32"`), never the default of existing models."""

    def __init__(self, weight: torch.Tensor, use_kernel: bool = True) -> None:
        super().__init__()
        self.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, requires_grad=False)
        self.kernel = load_kernel() if use_kernel else None

    def weight_bytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        w = self.weight
        if self.kernel is not None and rows <= 4 and x.device.type == "cpu" and w.dtype == x.dtype == torch.float32:
            return self.kernel.f32_gemv(x.reshape(rows, -1), w.contiguous()).reshape(*x.shape[:-1], -1)
        return F.linear(x, w)


QUANTIZERS = {"fp32": F32Linear, "int8": Int8Linear, "q4": Q4Linear}


class FusedDecoder:
    """One decoded token (batch 1) through the whole model in a single kernel call (`decode_step` in
    `csrc/qgemv.cpp`), with fp32, int8 or 4-bit weights.

    Batch-1 decoding is bound by reading the weights, but a module-by-module forward adds ~20 small PyTorch calls
    per layer (norms, views, RoPE, the attention kernel, adds), each with its own dispatch and some with their own
    thread wake-up, and on two cores that costs a large part of each token's time. Here each layer is RMSNorm, the
    fused QKV GEMV, RoPE, writing the key/value into the pre-allocated cache in place, attention over the cache,
    the output GEMV, RMSNorm, the fused gate/up GEMV, SwiGLU and the down GEMV, all in C++; only the GEMVs use
    both threads. It holds references to the model's own weights (nothing copied) and writes the model's
    `KVCache`."""

    def __init__(self, model: Transformer, kernel) -> None:
        c = model.config
        self.kernel, self.n_heads, self.n_kv_heads, self.eps = kernel, c.n_heads, c.n_kv_heads, c.norm_eps
        self.tok_emb, self.norm = model.tok_emb.weight.detach(), model.norm.weight.detach()
        self.rope_cos, self.rope_sin = model.rope_cos, model.rope_sin
        self.norms = [n.weight.detach() for b in model.layers for n in (b.attn_norm, b.ffn_norm)]
        self.mats = [
            t for b in model.layers for m in (b.attn.qkv, b.attn.proj, b.ffn.gate_up, b.ffn.down) for t in _tensors(m)
        ]
        self.head = _tensors(model.lm_head)

    def __call__(self, idx: torch.Tensor, kv_cache) -> torch.Tensor:
        """Logits `[1, 1, vocab]` of the single token `idx` (`[1, 1]`) at position `kv_cache.pos`; the cache
        advances by one, as in `Transformer.forward`."""
        logits = self.kernel.decode_step(
            self.tok_emb[int(idx[0, 0])],
            self.norms,
            self.mats,
            kv_cache.k,
            kv_cache.v,
            kv_cache.pos,
            self.rope_cos,
            self.rope_sin,
            self.norm,
            self.head,
            self.n_heads,
            self.n_kv_heads,
            self.eps,
        )
        kv_cache.pos += 1
        return logits.view(1, 1, -1)


_NONE = torch.empty(0)


def _tensors(layer: nn.Module) -> list[torch.Tensor]:
    """The three tensors the kernel's decode step takes for one matrix (its storage decides the kind)."""
    if isinstance(layer, Int8Linear):
        return [layer.q, layer.scale, _NONE]
    if isinstance(layer, Q4Linear):
        return [layer.packed, layer.d, layer.m]
    return [layer.weight.detach().contiguous(), _NONE, _NONE]


_FUSABLE = (nn.Linear, F32Linear, Int8Linear, Q4Linear)


def prepare_decode(model: Transformer, use_kernel: bool = True) -> Transformer:
    """Give `model` the fused batch-1 decode path (`model.decode_step`, used by `generate.stream` for each token
    after the prompt) when the kernel is built and the model is a CPU model it covers (fp32 activations; fp32,
    int8 or 4-bit matrices; no QK-norm); otherwise `model.decode_step = None` and decoding stays module by module,
    which gives the same tokens more slowly. Opt-in: training and a model without it are unchanged."""
    kernel = load_kernel() if use_kernel else None
    emb = model.tok_emb.weight
    mats = [m for b in model.layers for m in (b.attn.qkv, b.attn.proj, b.ffn.gate_up, b.ffn.down)]
    covered = all(
        type(m) in _FUSABLE
        and getattr(m, "bias", None) is None
        and _tensors(m)[0].dtype in (torch.float32, torch.int8, torch.uint8)
        for m in [*mats, model.lm_head]
    )
    if kernel is None or emb.device.type != "cpu" or emb.dtype != torch.float32 or model.config.qk_norm or not covered:
        model.decode_step = None
    else:
        model.decode_step = FusedDecoder(model, kernel)
    return model


def quantize_model(model: Transformer, kind: str = "int8", use_kernel: bool = True) -> Transformer:
    """Replace every linear layer of `model` (the head included) by its `kind` (`"int8"`/`"q4"`)
    quantized version, in place (`"fp32"`: the same weights through the fp32 kernel). A tied head gets its own
    quantized copy; the embedding table stays fp32 (a lookup reads one row per token, so its size costs no
    bandwidth). With the kernel built, the model also gets the one-call decode step (`prepare_decode`)."""
    if kind not in QUANTIZERS:
        raise ValueError(f"unknown quantization {kind!r}; choose one of {sorted(QUANTIZERS)}")
    layer = QUANTIZERS[kind]
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, layer(child.weight, use_kernel))
    prepare_decode(model, use_kernel)  # the one-call decode step for these layers, where the kernel is built
    return model.eval()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights a decode step reads: every matrix and norm gain, the embedding table counted as the
    one row it looks up (quantized layers by their stored size)."""
    total = 0
    for module in model.modules():
        if isinstance(module, (Int8Linear, Q4Linear, F32Linear)):
            total += module.weight_bytes()
        elif isinstance(module, nn.Embedding):
            total += module.weight.shape[1] * module.weight.element_size()
        elif isinstance(module, nn.Linear) or hasattr(module, "eps"):
            total += sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
    return total
