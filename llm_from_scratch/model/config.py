"""The model's hyper-parameters as one frozen dataclass, and the presets the book, the tests and the CLI share."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

ROPE_SCALINGS = (None, "linear", "ntk", "yarn")


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-style decoder: token embeddings, `n_layers` pre-norm blocks (RMSNorm, attention with RoPE,
    RMSNorm, SwiGLU), a final RMSNorm and a linear head onto the vocabulary.

    `n_kv_heads < n_heads` gives grouped-query attention (`n_kv_heads == 1` is multi-query attention).
    `rope_scaling` stretches RoPE at inference to run beyond `rope_original_context` (the training context):
    `"linear"` (position interpolation), `"ntk"` (NTK-aware base change) or `"yarn"`, by `rope_factor`.
    """

    vocab_size: int = 8192
    context_length: int = 256
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_hidden: int = 704  # SwiGLU hidden size: about 8/3 * d_model, rounded to a multiple of 64
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    dropout: float = 0.0
    init_std: float = 0.02
    rope_scaling: str | None = None
    rope_factor: float = 1.0
    rope_original_context: int | None = None
    # Speedrun-chapter options, off by default (and then left out of to_dict, so existing checkpoints still load):
    qk_norm: bool = False  # RMS-normalise each head's queries and keys before RoPE (Dehghani et al. 2023)
    zero_init_proj: bool = False  # the two projections into the residual stream start at zero

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def validate(self) -> ModelConfig:
        """Raise a `ValueError` that names the field and the fix if the shapes cannot fit together."""
        positive = ("vocab_size", "context_length", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig: n_heads={self.n_heads} does not divide d_model={self.d_model}; "
                f"every head gets d_model / n_heads dimensions, so pick n_heads among the divisors of {self.d_model}"
            )
        if self.head_dim % 2:
            raise ValueError(
                f"ModelConfig: head_dim = d_model / n_heads = {self.head_dim} is odd; RoPE rotates pairs of "
                "dimensions, so head_dim must be even"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"ModelConfig: n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}; in grouped-query "
                "attention each key/value head serves n_heads / n_kv_heads query heads"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.rope_theta <= 0 or self.norm_eps <= 0 or self.init_std <= 0:
            raise ValueError("ModelConfig: rope_theta, norm_eps and init_std must be positive")
        if self.rope_scaling not in ROPE_SCALINGS:
            raise ValueError(f"ModelConfig.rope_scaling must be one of {ROPE_SCALINGS}, got {self.rope_scaling!r}")
        if self.rope_scaling is not None:
            if self.rope_factor < 1.0:
                raise ValueError(f"ModelConfig.rope_factor must be >= 1 to extend the context, got {self.rope_factor}")
            if self.rope_original_context is None or self.rope_original_context <= 0:
                raise ValueError(
                    "ModelConfig.rope_original_context (the context the model was trained with) must be set "
                    f"when rope_scaling={self.rope_scaling!r}"
                )
        return self

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (validated), e.g. `config.replace(dropout=0.0)`."""
        return dataclasses.replace(self, **changes).validate()

    def with_context_extension(self, kind: str, factor: float) -> ModelConfig:
        """The config for running a model trained at `context_length` on `factor` times longer inputs."""
        original = self.rope_original_context or self.context_length
        return self.replace(
            rope_scaling=kind,
            rope_factor=float(factor),
            rope_original_context=original,
            context_length=int(original * factor),
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in _OPTIONAL_FIELDS:
            if not d[name]:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**data).validate()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


_OPTIONAL_FIELDS = ("qk_norm", "zero_init_proj")

# Named shapes for parameter, FLOP and memory accounting. The pipeline's own models (the tiny and book presets) are
# the model sections of llm_from_scratch/pipeline/configs/*.toml.
ARCHITECTURES: dict[str, ModelConfig] = {
    # About 10M parameters: nanoGPT's Shakespeare GPU shape (6 layers, 384 dims, context 256), Llama-style.
    "small": ModelConfig(
        vocab_size=8192, context_length=256, d_model=384, n_layers=6, n_heads=6, n_kv_heads=2, ffn_hidden=1024
    ),
    # GPT-2 small's shape (Radford et al. 2019) in Llama form: the SwiGLU hidden size 2048 with three matrices has
    # the parameters of GPT-2's 3072-wide two-matrix MLP. For parameter and FLOP accounting.
    "gpt2-124m": ModelConfig(
        vocab_size=50257, context_length=1024, d_model=768, n_layers=12, n_heads=12, n_kv_heads=12, ffn_hidden=2048
    ),
    # Meta's Llama-3.2-1B (config.json of meta-llama/Llama-3.2-1B). Its "llama3" RoPE scaling for 128k context is
    # not reproduced; the shapes, and so the parameter count of 1,235,814,400, are.
    "llama-3.2-1b": ModelConfig(
        vocab_size=128256,
        context_length=8192,
        d_model=2048,
        n_layers=16,
        n_heads=32,
        n_kv_heads=8,
        ffn_hidden=8192,
        rope_theta=500000.0,
        norm_eps=1e-5,
        tie_embeddings=True,
    ),
}


def get_config(name: str | ModelConfig) -> ModelConfig:
    """A named architecture (or a config passed through), validated."""
    if isinstance(name, ModelConfig):
        return name.validate()
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name].validate()
