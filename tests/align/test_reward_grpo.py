"""Reward model, Bradley-Terry loss, GRPO advantages and loss, and the verifier."""

import math

import pytest
import torch

from llm_from_scratch.align.grpo import group_advantages, grpo_loss
from llm_from_scratch.align.reward import RewardModel, bradley_terry_loss


def test_bradley_terry_loss_matches_formula():
    rc, rr = torch.tensor([1.0, -0.5]), torch.tensor([0.0, 0.5])
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(1 / (1 + math.exp(1.0)))) / 2
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, rel=1e-6)


def test_reward_model_reads_last_real_token_and_ignores_padding(model):
    rm = RewardModel(model)
    torch.nn.init.normal_(rm.head.weight)
    seq = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0, 0]])
    a = rm(seq, torch.tensor([4]))
    b = rm(padded, torch.tensor([4]))
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(rm(seq, torch.tensor([3])), a)


def test_group_advantages_are_standardised_per_group():
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 10.0, 10.0, 10.0]), group_size=3)
    assert adv[:3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-5)
    assert adv[3:].tolist() == pytest.approx([0.0, 0.0, 0.0])  # no preference inside the group: no signal


def test_grpo_loss_at_reference_is_minus_mean_advantage_and_kl_zero():
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([1.0, -1.0])
    loss, kl = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, clip=0.2, kl_coef=0.1)
    assert loss.item() == pytest.approx(0.0) and kl.item() == pytest.approx(0.0)
    loss.backward()
    # the gradient pushes the positive-advantage reply's tokens up (descent direction = -grad)
    assert (logp.grad[0, :2] < 0).all() and (logp.grad[1, 0] > 0) and logp.grad[0, 2] == 0


def test_verifier_definition():
    from llm_from_scratch.align.verifier import MAX_WORDS, verify

    texts = ["I thank you, good my lord.", " ".join(["word"] * (MAX_WORDS + 1)), "Hence, you damn fucking idiot!"]
    checks = verify([*texts, texts[0]], [True, True, True, False])
    assert [c["ok"] for c in checks] == [True, False, False, False]
    assert [c["brief"] for c in checks] == [True, False, True, True]
    assert checks[2]["flagged"] and not checks[0]["flagged"]
