"""Pipeline parallelism: consecutive blocks on consecutive ranks, the batch cut into micro-batches (GPipe, Huang et
al. 2019), activations sent forward and their gradients sent back with point-to-point `send` / `recv`.

`gpipe_schedule` lays out the GPipe timetable (all forwards, then all backwards) and measures its idle
"bubble"; `gpipe_train_step` runs that schedule for real on the book's model.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gpipe_schedule(n_stages: int, n_micro: int, t_fwd: int = 1, t_bwd: int = 2) -> list[tuple[int, int, int, str, int]]:
    """Every task of one GPipe step as `(stage, start, duration, "F" or "B", micro-batch)`.

    Stage `s` runs forward of micro-batch `m` once stage `s - 1` has finished it; backward runs in reverse
    stage order once all forwards are done and the next stage has finished that micro-batch's backward.
    """
    fwd_end = [[0] * n_micro for _ in range(n_stages)]
    tasks = []
    for s in range(n_stages):
        free = 0
        for m in range(n_micro):
            start = max(free, fwd_end[s - 1][m] if s else 0)
            fwd_end[s][m] = free = start + t_fwd
            tasks.append((s, start, t_fwd, "F", m))
    bwd_end = [[0] * n_micro for _ in range(n_stages)]
    for s in reversed(range(n_stages)):
        free = fwd_end[s][-1]
        for m in reversed(range(n_micro)):
            ready = bwd_end[s + 1][m] if s + 1 < n_stages else fwd_end[s][-1]
            start = max(free, ready)
            bwd_end[s][m] = free = start + t_bwd
            tasks.append((s, start, t_bwd, "B", m))
    return tasks


def bubble_fraction(n_stages: int, n_micro: int) -> float:
    """Idle fraction of a GPipe (or 1F1B) step with uniform stages: `(p - 1) / (m + p - 1)`."""
    return (n_stages - 1) / (n_micro + n_stages - 1)


def measured_bubble(tasks: list[tuple[int, int, int, str, int]]) -> float:
    """Idle time over total time of all stages in a timetable from `gpipe_schedule`."""
    n_stages = 1 + max(t[0] for t in tasks)
    makespan = max(start + dur for _, start, dur, _, _ in tasks)
    busy = sum(dur for _, _, dur, _, _ in tasks)
    return 1 - busy / (n_stages * makespan)


def stage_parameters(model: nn.Module, rank: int, world: int) -> dict[str, nn.Parameter]:
    """The parameters stage `rank` owns: its contiguous run of blocks, plus the embedding on the first stage and
    the final norm and head on the last."""
    n = len(model.layers)
    if n % world:
        raise ValueError(f"pipeline over {world} stages needs n_layers={n} divisible by {world}")
    per = n // world
    owned = {}
    for name, p in model.named_parameters():
        if name.startswith("layers."):
            if int(name.split(".")[1]) // per == rank:
                owned[name] = p
        elif (name.startswith("tok_emb") and rank == 0) or (name.startswith(("norm", "lm_head")) and rank == world - 1):
            owned[name] = p
    return owned


def gpipe_train_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_micro: int, rank: int, world: int
) -> tuple[float | None, nn.Module]:
    """One GPipe forward/backward of the mean loss over the batch `(x, y)`, this rank running its stage only.

    Returns the loss (on the last stage; `None` elsewhere) and a module whose `named_parameters()` are this
    stage's, with their gradients. The model must not tie its embedding and head (they would sit on different
    stages, and their gradients would need one more all-reduce between first and last stage, as Megatron does).
    """
    if model.config.tie_embeddings:
        raise ValueError("gpipe_train_step: untie the embeddings (ModelConfig.tie_embeddings=False) for this demo")
    per = len(model.layers) // world
    blocks = model.layers[rank * per : (rank + 1) * per]
    T = x.shape[1]
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    first, last = rank == 0, rank == world - 1
    inputs, outputs, total = [], [], 0.0
    for xm, ym in zip(x.chunk(n_micro), y.chunk(n_micro), strict=True):  # all forwards
        if first:
            h_in = model.tok_emb(xm)
        else:
            h_in = torch.empty(xm.shape[0], T, model.config.d_model)
            dist.recv(h_in, src=rank - 1)
            h_in.requires_grad_(True)
        h = h_in
        for block in blocks:
            h = block(h, cos, sin)
        if last:
            logits = model.lm_head(model.norm(h))
            h = F.cross_entropy(logits.flatten(0, 1), ym.flatten()) / n_micro
            total += h.item()
        else:
            dist.send(h.detach().contiguous(), dst=rank + 1)
        inputs.append(h_in)
        outputs.append(h)
    for h_in, h in zip(reversed(inputs), reversed(outputs), strict=True):  # all backwards, last micro-batch first
        if last:
            h.backward()
        else:
            grad = torch.empty_like(h)
            dist.recv(grad, src=rank + 1)
            h.backward(grad)
        if not first:
            dist.send(h_in.grad.contiguous(), dst=rank - 1)
    owned = stage_parameters(model, rank, world)
    stage = _Named(owned)
    return (total if last else None), stage


class _Named(nn.Module):
    """A view whose `named_parameters()` are the given (name, parameter) pairs of the full model."""

    def __init__(self, params: dict[str, nn.Parameter]) -> None:
        super().__init__()
        self._owned = params

    def named_parameters(self, *args, **kwargs):
        yield from self._owned.items()
