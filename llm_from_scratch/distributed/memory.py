"""ZeRO memory arithmetic (Rajbhandari et al. 2020): bytes per parameter on each rank, by stage and precision.

Training with Adam keeps, per parameter: the weight, its gradient, and the optimiser state (first and second
moments; with mixed precision also an fp32 master copy of the weight). Data parallelism replicates all of it on
every rank; ZeRO stage 1 shards the optimiser state over the `N` ranks, stage 2 the gradients too, stage 3 (FSDP)
the weights as well.
"""

from __future__ import annotations

from dataclasses import dataclass

# (weight, gradient, optimiser state) bytes per parameter.
PRECISIONS: dict[str, tuple[int, int, int]] = {
    # Everything fp32: 4-byte weight, 4-byte gradient, Adam m and v at 4 bytes each.
    "fp32": (4, 4, 8),
    # Mixed precision as in ZeRO / Megatron: bf16 (or fp16) weight and gradient, fp32 master weight + m + v.
    "mixed": (2, 2, 12),
}


@dataclass(frozen=True)
class RankMemory:
    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer


def zero_memory(n_params: int, world: int, stage: int, precision: str = "mixed") -> RankMemory:
    """Bytes of model state per rank (activations and temporary buffers excluded):

    stage 0 (DDP): `(w + g + k) P`; stage 1: `(w + g) P + k P / N`; stage 2: `w P + (g + k) P / N`;
    stage 3: `(w + g + k) P / N`.
    """
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0, 1, 2 or 3, got {stage}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    w, g, k = PRECISIONS[precision]
    return RankMemory(
        weights=w * n_params / (world if stage >= 3 else 1),
        gradients=g * n_params / (world if stage >= 2 else 1),
        optimizer=k * n_params / (world if stage >= 1 else 1),
    )


def memory_table(n_params: int, world: int, precision: str = "mixed") -> list[dict]:
    """One row per strategy, in GB (1e9 bytes), as printed in the chapter and by the CLI."""
    names = {0: "DDP (ZeRO-0)", 1: "ZeRO-1", 2: "ZeRO-2", 3: "ZeRO-3 / FSDP"}
    rows = []
    for stage in range(4):
        m = zero_memory(n_params, world, stage, precision)
        rows.append({"strategy": names[stage], "weights_gb": m.weights / 1e9, "grads_gb": m.gradients / 1e9,
                     "optimizer_gb": m.optimizer / 1e9, "total_gb": m.total / 1e9})  # fmt: skip
    return rows
