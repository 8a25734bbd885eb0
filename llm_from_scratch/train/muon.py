"""Muon (Jordan et al. 2024): momentum, orthogonalised by a Newton-Schulz iteration, for the hidden matrices;
AdamW for everything else (embeddings, the output head, norm gains).

One `torch.optim.Optimizer` holds both kinds of parameter group (`use_muon` True or False), so the trainer,
gradient clipping, the schedule and the pickle-free checkpoints (`train/checkpoint.py`) treat it like AdamW.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from llm_from_scratch.train.optim import adamw_update

# The quintic's coefficients (a, b, c) from Jordan et al. (2024): chosen to push every singular value in (0, 1]
# quickly into roughly [0.7, 1.2] rather than to converge exactly to 1 (five steps suffice; exactness is not needed).
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximately the orthogonal polar factor `U V^T` of `g = U S V^T`: the nearest semi-orthogonal matrix.

    `X <- a X + (b A + c A^2) X` with `A = X X^T` maps each singular value `s` to `a s + b s^3 + c s^5`
    and leaves the singular vectors alone. Dividing by the Frobenius norm first puts every `s` in `[0, 1]`.
    Wide orientation (rows <= columns) keeps `A` the smaller Gram matrix.
    """
    if g.ndim != 2:
        raise ValueError(f"newton_schulz orthogonalises a matrix, got a tensor of shape {tuple(g.shape)}")
    a, b, c = NS_COEFFS
    x = g.float()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


def muon_update(
    p: torch.Tensor,
    grad: torch.Tensor,
    state: dict,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool = True,
    ns_steps: int = 5,
) -> None:
    """One Muon step for one matrix, in place: momentum, Nesterov look-ahead, orthogonalise, scale, apply."""
    if not state:
        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    buf = state["momentum_buffer"]
    buf.mul_(momentum).add_(grad)  # M <- mu M + G
    direction = grad.add(buf, alpha=momentum) if nesterov else buf  # Nesterov: G + mu M
    update = newton_schulz(direction, ns_steps)
    # An orthogonal update of an m x n matrix has entries of RMS 1/sqrt(max(m, n)); sqrt(max(1, m/n)) restores
    # a per-entry size independent of the aspect ratio for tall matrices (Jordan et al.'s scaling).
    scale = max(1.0, p.shape[0] / p.shape[1]) ** 0.5
    if weight_decay:
        p.mul_(1 - lr * weight_decay)  # decoupled, as in AdamW
    p.add_(update, alpha=-lr * scale)


class Muon(torch.optim.Optimizer):
    """Muon for groups with `use_muon=True` (2-D hidden matrices), AdamW for the other groups.

    Every group has an `lr` (the trainer's schedule writes it) and an `lr_mult`: Muon's matrices take a larger
    step than AdamW's (typically 0.02 against 1e-3), and the one schedule scales both by the same factor.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or not 0 <= momentum < 1 or ns_steps < 1:
            raise ValueError(f"Muon needs lr >= 0, momentum in [0, 1), ns_steps >= 1; got {lr}, {momentum}, {ns_steps}")
        defaults = dict(
            lr=lr,
            lr_mult=1.0,
            use_muon=False,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["use_muon"] and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon groups (use_muon=True) hold only 2-D matrices; put the rest in AdamW groups")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"] * group["lr_mult"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["use_muon"]:
                    mu, nesterov, ns = group["momentum"], group["nesterov"], group["ns_steps"]
                    muon_update(p, p.grad, self.state[p], lr, mu, wd, nesterov, ns)
                else:
                    beta1, beta2 = group["betas"]
                    adamw_update(p, p.grad, self.state[p], lr, beta1, beta2, group["eps"], wd)
        return loss


def muon_param_groups(
    model: nn.Module, weight_decay: float, muon_lr_mult: float, muon_weight_decay: float = 0.0
) -> list[dict]:
    """Three groups: Muon for the hidden matrices; AdamW with decay for other matrices; AdamW without decay for
    vectors and embeddings (the same rule as `llm_from_scratch.train.optim.param_groups`).

    Not Muon: the embedding table (its gradient is a sparse sum of one-hot rows, not a linear map to be
    conditioned) and the output head, including a head tied to the embedding (Jordan et al. found AdamW better for
    both), and every vector (norm gains, biases). `muon_weight_decay` is the Muon matrices' own (decoupled)
    decay: their step is `muon_lr_mult` times larger, so AdamW's coefficient would decay them that much harder.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    # the module's own name, so a wrapper's prefix (DDP's "module.") does not hide the head
    heads = {id(p) for name, p in model.named_parameters() if name.split(".")[-2:-1] in (["lm_head"], ["head"])}
    muon, adam_decay, adam_plain, seen = [], [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if p.ndim < 2 or id(p) in embeddings:
            adam_plain.append(p)
        elif p.ndim == 2 and id(p) not in heads:
            muon.append(p)
        else:
            adam_decay.append(p)
    return [
        {"params": muon, "use_muon": True, "lr_mult": muon_lr_mult, "weight_decay": muon_weight_decay},
        {"params": adam_decay, "use_muon": False, "lr_mult": 1.0, "weight_decay": weight_decay},
        {"params": adam_plain, "use_muon": False, "lr_mult": 1.0, "weight_decay": 0.0},
    ]
