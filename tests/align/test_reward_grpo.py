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
    assert [c["format_ok"] for c in checks] == [True, False, False, False]
    assert [c["brief"] for c in checks] == [True, False, True, True]
    assert checks[2]["flagged"] and not checks[0]["flagged"]


def test_dr_grpo_advantage_keeps_the_scale():
    from llm_from_scratch.align.grpo import group_advantages

    r = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    mean_only = group_advantages(r, 4, scale="mean")
    assert mean_only.tolist() == pytest.approx([-0.25, -0.25, -0.25, 0.75, -0.75, 0.25, 0.25, 0.25])
    std = group_advantages(r, 4)
    # GRPO's std division blows the rare right answer up to the same size as a 50/50 group's (the bias Dr. GRPO drops)
    assert std[3].item() == pytest.approx(0.75 / r[:4].std().item(), rel=1e-4)
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.tensor([]), 4)


def test_constant_norm_does_not_favour_short_replies():
    from llm_from_scratch.align.grpo import grpo_loss

    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    logp = torch.zeros(2, 4, requires_grad=True)
    adv = torch.tensor([1.0, 1.0])
    loss, _ = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, 0.2, 0.0, norm=4.0)
    loss.backward()
    # every counted token gets the same push whatever its reply's length (per-reply mean would give 1/4 vs 1)
    assert logp.grad[0, 0].item() == pytest.approx(logp.grad[1, 0].item())
    logp.grad = None
    loss, _ = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, 0.2, 0.0)
    loss.backward()
    assert logp.grad[1, 0].item() == pytest.approx(4 * logp.grad[0, 0].item())


@pytest.mark.parametrize(
    ("reward_fn", "error", "match"),
    [
        (lambda p, r: 1 / 0, RuntimeError, "ZeroDivisionError"),
        (lambda p, r: ["good"] * len(r), ValueError, "not numbers"),
        (lambda p, r: torch.ones(1), ValueError, "scores for"),
        (lambda p, r: torch.full((len(r),), float("nan")), ValueError, "NaN"),
    ],
)
def test_bad_reward_function_is_one_clear_error_and_leaves_the_policy(model, tok, reward_fn, error, match):
    from llm_from_scratch.align.grpo import GRPOConfig, train_grpo

    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = GRPOConfig(steps=1, prompts_per_step=2, group_size=2, max_new_tokens=4)
    with pytest.raises(error, match=match):
        train_grpo(model, model, reward_fn, [tok.encode("Hi")], 0, cfg)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_grpo_rejects_no_prompts_and_prompts_over_the_context(model, tok):
    from llm_from_scratch.align.grpo import GRPOConfig, train_grpo

    cfg = GRPOConfig(steps=1, group_size=2, max_new_tokens=8)
    with pytest.raises(ValueError, match="at least one prompt"):
        train_grpo(model, model, lambda p, r: torch.zeros(len(r)), [], 0, cfg)
    with pytest.raises(ValueError, match="exceeds the context length"):
        train_grpo(model, model, lambda p, r: torch.zeros(len(r)), [[5] * 95], 0, cfg)


def test_grpo_config_options_are_checked():
    from llm_from_scratch.align.grpo import GRPOConfig

    with pytest.raises(ValueError, match="advantage"):
        GRPOConfig(advantage="z").validate()
    with pytest.raises(ValueError, match="loss_norm"):
        GRPOConfig(loss_norm="tokens").validate()
    assert GRPOConfig(advantage="mean", loss_norm="constant").validate().advantage == "mean"


def test_an_empty_or_partial_group_is_one_clear_error():
    from llm_from_scratch.align.grpo import group_advantages

    with pytest.raises(ValueError, match="empty or partial group"):
        group_advantages(torch.zeros(0), 4)
    with pytest.raises(ValueError, match="empty or partial group"):
        group_advantages(torch.zeros(6), 4)
