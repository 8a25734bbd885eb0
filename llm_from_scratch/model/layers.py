"""The two feed-forward-side pieces of a Llama block: RMSNorm (Zhang & Sennrich 2019) and SwiGLU (Shazeer 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm written out: divide by the root mean square of the features, then scale per feature.

    Unlike LayerNorm it neither subtracts the mean nor adds a bias: re-centring turned out not to matter, and one
    reduction instead of two is cheaper. Computed in fp32, whatever the input dtype, as HF Llama does.
    """
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


class RMSNorm(nn.Module):
    """RMSNorm with a learned gain initialised to one; uses PyTorch's fused `F.rms_norm` kernel."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class SwiGLU(nn.Module):
    """`down(silu(gate(x)) * up(x))`: a gated feed-forward layer; gate and up are one fused matmul.

    Fusing the two input projections into one `[2 * hidden, d_model]` weight does the same arithmetic in one
    larger matmul (better for the CPU and GPU kernels) and one Python call instead of two.
    """

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)
