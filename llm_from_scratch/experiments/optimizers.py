"""Small experiments the optimiser chapter runs: parity with torch.optim.AdamW, and L2 versus decoupled decay."""

from __future__ import annotations

import torch

from llm_from_scratch.train.data import TokenData, train_batch
from llm_from_scratch.train.optim import AdamW, param_groups


def parity_with_torch(
    model_config, data: TokenData, steps: int = 1000, batch_size: int = 4, block_size: int = 32, lr: float = 3e-3
) -> dict:
    """Train two copies of one Transformer side by side, one with our AdamW and one with `torch.optim.AdamW`,
    on the same batches; return the largest parameter and loss differences seen and the first/last loss."""
    from llm_from_scratch.model import Transformer

    torch.manual_seed(0)
    ours = Transformer(model_config)
    ref = Transformer(model_config)
    ref.load_state_dict(ours.state_dict())
    kw = dict(lr=lr, betas=(0.9, 0.95), eps=1e-8)
    opts = [AdamW(param_groups(ours, 0.1), **kw), torch.optim.AdamW(param_groups(ref, 0.1), **kw)]
    max_loss_diff, losses = 0.0, []
    for step in range(steps):
        x, y = train_batch(data, batch_size, block_size, 0, step, 0, 1, "cpu")
        pair = []
        for model, opt in zip((ours, ref), opts, strict=True):
            loss = model(x, y)[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            pair.append(loss.item())
        max_loss_diff = max(max_loss_diff, abs(pair[0] - pair[1]))
        losses.append(pair[0])
    max_param_diff = max((p - q).abs().max().item() for p, q in zip(ours.parameters(), ref.parameters(), strict=True))
    return {
        "max_param_diff": max_param_diff,
        "max_loss_diff": max_loss_diff,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def decay_under_noise(
    steps: int = 400,
    lr: float = 1e-2,
    weight_decay: float = 0.1,
    grad_scales=(10.0, 0.01),
    n: int = 1000,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Two groups of `n` weights start at 1 and receive zero-mean gradient noise of very different sizes, so
    decay is the only systematic force. Returns, per optimiser, the mean weight of each group after every step,
    shape `[steps + 1, 2]` (the mean over many weights averages the random walk of the noise away).

    With the L2 penalty inside Adam the decay term is divided by `sqrt(v)` like the gradient: the weight whose
    gradients are large is hardly decayed, the quiet one is decayed at the full step size `lr` per step.
    Decoupled decay shrinks both by the same factor `1 - lr * weight_decay` per step.
    """
    scales = torch.tensor(grad_scales).unsqueeze(1)
    out = {}
    for name, decoupled in (("Adam + L2", False), ("AdamW", True)):
        g = torch.Generator().manual_seed(seed)
        w = torch.nn.Parameter(torch.ones(2, n))
        opt = AdamW([w], lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay, decoupled=decoupled)
        path = [w.detach().mean(1)]
        for _ in range(steps):
            w.grad = scales * torch.randn(2, n, generator=g)
            opt.step()
            path.append(w.detach().mean(1))
        out[name] = torch.stack(path)
    return out
