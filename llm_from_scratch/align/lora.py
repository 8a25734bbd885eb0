"""LoRA (Hu et al. 2021) from scratch: a low-rank update `W + (alpha / r) B A` on frozen linear layers.

Fine-tuning changes a pretrained weight by a matrix `dW` that, the paper found, has low "intrinsic rank": so it is
written `dW = B A` with `A` `r x in` and `B` `out x r`, `r` much smaller than either side, and only `A`
and `B` are trained. `B` starts at zero, so the adapted model starts as the pretrained one exactly; `A` starts
random (Kaiming-uniform, the paper's and `peft`'s choice) so the first gradient of `B` is not zero. The scale
`alpha / r` keeps the update's size comparable when `r` changes. After training the update is *merged* into
`W` (no extra cost at inference) and can be *unmerged* again to swap adapters.

Here the adapters sit on the attention projections (`attn.qkv`, `attn.proj`) and the MLP's (`ffn.gate_up`,
`ffn.down`) of every block; embeddings, norms and the output head stay frozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

TARGETS = ("attn.qkv", "attn.proj", "ffn.gate_up", "ffn.down")


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = TARGETS

    def validate(self) -> LoRAConfig:
        if self.rank < 1:
            raise ValueError(f"lora.rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"lora.alpha must be > 0, got {self.alpha}")
        return self


class LoRALinear(nn.Module):
    """`base(x) + (alpha / r) * x A^T B^T` around a frozen `nn.Linear`; `merge` folds the update into it."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        self.rank, self.scale = rank, alpha / rank
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, w.shape[1], dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(w.shape[0], rank, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.merged = False

    def delta(self) -> torch.Tensor:
        """The weight update `(alpha / r) B A` (`out x in`)."""
        return self.scale * self.lora_B @ self.lora_A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base(x)
        # two thin matmuls, never the full out x in product: the saving LoRA is for
        return self.base(x) + self.scale * ((x @ self.lora_A.t()) @ self.lora_B.t())

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta()
            self.merged = False


def _adapted(model: nn.Module, targets: tuple[str, ...]) -> list[tuple[str, nn.Module, str]]:
    """`(qualified name, parent module, attribute)` of every linear layer whose name ends in a target."""
    out = []
    for name, module in model.named_modules():
        for attr, child in module.named_children():
            full = f"{name}.{attr}" if name else attr
            if isinstance(child, nn.Linear | LoRALinear) and full.endswith(targets):
                out.append((full, module, attr))
    return out


def apply_lora(model: nn.Module, config: LoRAConfig) -> nn.Module:
    """Freeze every parameter of `model` and wrap its target linear layers in adapters (in place); returns it."""
    config.validate()
    found = _adapted(model, config.targets)
    if not found:
        raise ValueError(f"LoRA: the model has no linear layer named like {list(config.targets)}")
    for p in model.parameters():
        p.requires_grad_(False)
    for _, parent, attr in found:
        child = getattr(parent, attr)
        if not isinstance(child, LoRALinear):
            setattr(parent, attr, LoRALinear(child, config.rank, config.alpha))
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> None:
    for m in lora_layers(model).values():
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    for m in lora_layers(model).values():
        m.unmerge()


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain `nn.Linear` back in its place (in place; returns
    the model): what a fine-tuning stage saves, so that later stages load an ordinary model with no LoRA code.
    Every parameter is trainable again afterwards, as in a model fresh from a checkpoint."""
    for name, m in lora_layers(model).items():
        m.merge()
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, m.base)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors: what a LoRA checkpoint stores (kilobytes next to the model's megabytes)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if ".lora_A" in k or ".lora_B" in k}


def load_lora(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load adapter tensors saved by `lora_state_dict` into a model with adapters of the same shapes; a missing
    layer or a shape of another model is one `ValueError` and nothing is loaded."""
    own = {k: v for k, v in model.state_dict().items() if ".lora_A" in k or ".lora_B" in k}
    if not own:
        raise ValueError("load_lora: the model has no LoRA adapters; call apply_lora(model, config) first")
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"load_lora: the adapter does not fit this model (missing {missing[:3]}, extra {extra[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"load_lora: {k} has shape {tuple(v.shape)} but this model needs {tuple(own[k].shape)}: the adapter "
                "was trained on a model of another shape or rank"
            )
    if any(m.merged for m in lora_layers(model).values()):
        raise ValueError("load_lora: unmerge the adapters (unmerge_lora) before loading others")
    model.load_state_dict(state, strict=False)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
