"""AdamW from scratch against torch.optim.AdamW / torch.optim.Adam, and the parameter groups."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from llm_from_scratch.train.optim import AdamW, param_group_names, param_groups


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Embedding(50, 16), nn.Flatten(), nn.Linear(64, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 50)
    )


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x = torch.randint(0, 50, (8, 4), generator=g)
    return x, (x[:, 0] + 7) % 50  # a learnable target: the first token shifted by 7


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> list[float]:
    losses = []
    for step in steps:
        x, y = _batch(step)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adamw_matches_torch_over_1000_steps(wd):
    ours, ref = _mlp(), _mlp()
    kw = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
    losses = _train(ours, AdamW(param_groups(ours, wd), **kw), range(1000))
    ref_losses = _train(ref, torch.optim.AdamW(param_groups(ref, wd), **kw), range(1000))
    assert losses[-1] < 0.5 * losses[0]  # it really trained
    assert _max_diff(ours, ref) < 1e-6
    assert max(abs(a - b) for a, b in zip(losses, ref_losses, strict=True)) < 1e-6


def test_l2_variant_matches_torch_adam_and_differs_from_adamw():
    a, b, c = _mlp(), _mlp(), _mlp()
    kw = dict(lr=3e-3, weight_decay=0.1)
    _train(a, AdamW(a.parameters(), decoupled=False, **kw), range(200))
    _train(b, torch.optim.Adam(b.parameters(), **kw), range(200))
    _train(c, AdamW(c.parameters(), **kw), range(200))
    assert _max_diff(a, b) < 1e-6
    assert _max_diff(a, c) > 1e-3


def test_state_dict_round_trip_continues_exactly():
    full, half = _mlp(), _mlp()
    opt_full = AdamW(param_groups(full, 0.1), lr=1e-3)
    ref = _train(full, opt_full, range(100))
    opt_half = AdamW(param_groups(half, 0.1), lr=1e-3)
    _train(half, opt_half, range(50))
    model2 = copy.deepcopy(half)
    opt2 = AdamW(param_groups(model2, 0.1), lr=1e-3)
    opt2.load_state_dict(copy.deepcopy(opt_half.state_dict()))
    assert _train(model2, opt2, range(50, 100)) == ref[50:]
    # torch's AdamW accepts our state_dict and continues identically (same state layout)
    model3 = copy.deepcopy(half)
    opt3 = torch.optim.AdamW(param_groups(model3, 0.1), lr=1e-3)
    opt3.load_state_dict(copy.deepcopy(opt_half.state_dict()))
    torch_losses = _train(model3, opt3, range(50, 100))
    assert max(abs(a - b) for a, b in zip(torch_losses, ref[50:], strict=True)) < 1e-6


def test_param_groups_exclude_norms_biases_embeddings():
    decay, no_decay = param_group_names(_mlp())
    assert decay == ["2.weight", "5.weight"]
    assert set(no_decay) == {"0.weight", "2.bias", "3.weight", "3.bias", "5.bias"}


def test_tied_weights_appear_once_in_the_no_decay_group():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    groups = param_groups(model, 0.1)
    assert [len(g["params"]) for g in groups] == [0, 1]


def test_invalid_hyperparameters_raise():
    with pytest.raises(ValueError, match="betas"):
        AdamW(_mlp().parameters(), betas=(1.0, 0.9))
