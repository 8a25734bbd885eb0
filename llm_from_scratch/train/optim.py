"""AdamW written out (Kingma & Ba 2015; Loshchilov & Hutter 2019) and the parameter groups it is used with."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn


class AdamW(torch.optim.Optimizer):
    """Adam with bias correction and *decoupled* weight decay.

    `decoupled=False` turns it into Adam with an L2 penalty (the decay is added to the gradient and therefore
    divided by the adaptive denominator); that variant exists so the chapter can show the difference.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        decoupled: bool = True,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, decoupled=decoupled)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                adamw_update(p, p.grad, self.state[p], lr, beta1, beta2, eps, wd, group["decoupled"])
        return loss


def adamw_update(
    p: torch.Tensor,
    grad: torch.Tensor,
    state: dict,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool = True,
) -> None:
    """One AdamW step for one tensor, in place: the equations of the chapter, line by line."""
    if not state:
        state["step"] = torch.tensor(0.0)  # a tensor, as in torch.optim, so state_dicts interchange
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["step"] += 1
    t = state["step"].item()
    m, v = state["exp_avg"], state["exp_avg_sq"]
    if weight_decay and decoupled:
        p.mul_(1 - lr * weight_decay)  # decay the weight itself, outside the adaptive scaling
    elif weight_decay:
        grad = grad.add(p, alpha=weight_decay)  # L2: the penalty's gradient joins the loss gradient
    m.lerp_(grad, 1 - beta1)  # m <- beta1 m + (1 - beta1) g
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v <- beta2 v + (1 - beta2) g^2
    bias_correction1 = 1 - beta1**t  # both averages start at 0 and are biased towards it early on
    bias_correction2 = 1 - beta2**t
    denom = (v.sqrt() / math.sqrt(bias_correction2)).add_(eps)
    p.addcdiv_(m, denom, value=-lr / bias_correction1)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group (matrices of linear layers) and an undecayed one.

    Not decayed: biases and norm gains (vectors: shrinking a gain towards 0 just rescales activations, it does not
    regularise), and embedding tables (each row only gets a gradient when its token appears, so uniform decay
    would erase rare tokens' rows). A tied output head shares the embedding's tensor and follows it.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():  # parameters() already yields a tied tensor once
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or id(p) in embeddings else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def param_group_names(model: nn.Module, weight_decay: float = 0.1) -> tuple[list[str], list[str]]:
    """Names of the decayed and undecayed parameters (what `param_groups` decides, for printing)."""
    groups = param_groups(model, weight_decay)
    ids = [{id(p) for p in g["params"]} for g in groups]
    names = [[], []]
    for name, p in model.named_parameters():
        for i in range(2):
            if id(p) in ids[i]:
                names[i].append(name)
    return names[0], names[1]
