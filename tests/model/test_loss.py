"""The fused head + cross-entropy equals ``F.cross_entropy(F.linear(...))`` in value and gradients."""

import pytest
import torch
import torch.nn.functional as F

from llm_from_scratch.model import Transformer
from llm_from_scratch.model.loss import linear_cross_entropy
from llm_from_scratch.pipeline import preset_config


def _plain_and_fused(chunk_rows, n=37, d=16, vocab=50, ignore=(0, 5, 36)):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(vocab, d, generator=g, dtype=torch.float64)
    t = torch.randint(0, vocab, (n,), generator=g)
    t[list(ignore)] = -100
    out = []
    for fused in (False, True):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        if fused:
            loss = linear_cross_entropy(xx, ww, t, chunk_rows=chunk_rows)
        else:
            loss = F.cross_entropy(F.linear(xx, ww), t, ignore_index=-100)
        (3.0 * loss).backward()  # a non-unit incoming gradient must scale the stored ones
        out.append((loss.detach(), xx.grad, ww.grad))
    return out


@pytest.mark.parametrize("chunk_rows", [1, 8, 10, 37, 1000])
def test_fused_equals_plain_loss_and_gradients(chunk_rows):
    (l0, gx0, gw0), (l1, gx1, gw1) = _plain_and_fused(chunk_rows)
    assert torch.allclose(l0, l1, atol=1e-12)
    assert torch.allclose(gx0, gx1, atol=1e-12)
    assert torch.allclose(gw0, gw1, atol=1e-12)
    assert gx1[0].abs().max() == 0  # an ignored row gets no gradient


def test_transformer_fused_path_matches_logits_path():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model)
    idx = torch.randint(0, model.config.vocab_size, (2, 17))
    targets = idx[:, 1:].clone()
    targets[0, :4] = -100  # e.g. masked prompt tokens
    results = []
    for return_logits in (True, False):
        model.zero_grad(set_to_none=True)
        logits, loss = model(idx[:, :-1], targets, return_logits=return_logits)
        loss.backward()
        results.append((logits, loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (logits, l0, g0), (none, l1, g1) = results
    assert logits is not None and none is None
    assert torch.allclose(l0, l1, atol=1e-6)
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-6), name


def test_no_grad_falls_back_to_plain_cross_entropy():
    x, w = torch.randn(5, 4), torch.randn(7, 4)
    t = torch.tensor([1, 2, -100, 3, 6])
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(x, w, t), F.cross_entropy(x @ w.t(), t))
