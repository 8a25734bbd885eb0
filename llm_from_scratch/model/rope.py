"""Rotary position embeddings (RoPE, Su et al. 2021) in the half-split ("rotate_half") layout of HF Llama,
and the inference-time context extensions: position interpolation, NTK-aware base scaling and YaRN.

Each pair of dimensions (i, i + d/2) of a query or key is read as one complex number and rotated by the angle
`position * inv_freq[i]`. A dot product of two rotated vectors then depends only on the distance between their
positions, which is the relative-position property the tests check.
"""

from __future__ import annotations

import math

import torch


def rope_inv_freq(head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """The rotation speed of each dimension pair: `theta ** (-2i / d)` for `i = 0 .. d/2 - 1` (fp32)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    return 1.0 / (theta**exponents)


def yarn_inv_freq(
    head_dim: int, theta: float, factor: float, original_context: int, beta_fast: float = 32.0, beta_slow: float = 1.0
) -> tuple[torch.Tensor, float]:
    """YaRN (Peng et al. 2023): interpolate only the slow dimensions, keep the fast ones, and sharpen attention.

    A dimension pair that turns more than `beta_fast` times over the training context already "knows" relative
    distances and is left alone (extrapolation); one that turns less than `beta_slow` times never saw a full turn
    and is divided by `factor` (interpolation); in between a linear ramp mixes the two. The returned attention
    factor `0.1 ln(factor) + 1` multiplies cos and sin, which scales every attention logit by its square.
    """
    base = rope_inv_freq(head_dim, theta)

    def correction_dim(rotations: float) -> float:  # the dimension index that turns `rotations` times
        return head_dim * math.log(original_context / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), head_dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero in the ramp
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1 for fast dimensions (extrapolate), 0 for slow ones (interpolate)
    inv_freq = base / factor * (1 - keep) + base * keep
    attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, attention_factor


def rope_cache(
    head_dim: int,
    length: int,
    theta: float = 10000.0,
    scaling: str | None = None,
    factor: float = 1.0,
    original_context: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`cos` and `sin` tables of shape `[length, head_dim]` (fp32), the angles repeated for both halves.

    `scaling` extends a model trained at `original_context` to `factor` times that context:

    - `"linear"`: position interpolation (Chen et al. 2023) divides every angle by `factor`;
    - `"ntk"`: NTK-aware scaling raises the base to `theta * factor ** (d / (d - 2))`, which stretches the
      slowest dimension by `factor` while leaving the fastest almost untouched;
    - `"yarn"`: see `yarn_inv_freq`.
    """
    attention_factor = 1.0
    if scaling is None:
        inv_freq = rope_inv_freq(head_dim, theta)
    elif scaling == "linear":
        inv_freq = rope_inv_freq(head_dim, theta) / factor
    elif scaling == "ntk":
        inv_freq = rope_inv_freq(head_dim, theta * factor ** (head_dim / (head_dim - 2)))
    elif scaling == "yarn":
        if original_context is None:
            raise ValueError("YaRN needs original_context, the context length the model was trained with")
        inv_freq, attention_factor = yarn_inv_freq(head_dim, theta, factor, original_context)
    else:
        raise ValueError(f"unknown RoPE scaling {scaling!r}; use None, 'linear', 'ntk' or 'yarn'")
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos() * attention_factor, angles.sin() * attention_factor


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """`(x1, x2) -> (-x2, x1)` on the two halves of the last dimension: multiplication by `i`."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x` (`[..., T, head_dim]`) by the angles in `cos`/`sin` (`[T, head_dim]`).

    With `z = x1 + i x2` and angle `a`: `z e^{ia} = (x1 cos a - x2 sin a) + i (x2 cos a + x1 sin a)`,
    which is `x * cos + rotate_half(x) * sin` in the half-split layout.
    """
    return x * cos + rotate_half(x) * sin
