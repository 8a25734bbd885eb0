"""The verifiable skill: problems, the held-out split, the exact check, the verifier reward, SFT mixing."""

import dataclasses

import pytest
import torch

from llm_from_scratch.align.skill import (
    Problem,
    SkillConfig,
    chance_accuracy,
    heldout_problems,
    is_heldout,
    parse_answer,
    problems,
    skill_accuracy,
    train_examples,
    verifier_reward,
    verify_answer,
)


def test_answers_are_python_arithmetic():
    for p in problems(SkillConfig(), 300, heldout=False):
        assert p.answer == eval(f"{p.a} {p.op} {p.b}")  # the reference: Python's own arithmetic
        assert p.answer >= 0


def test_heldout_and_training_problems_never_meet():
    cfg = SkillConfig()
    held = set(heldout_problems(cfg))
    train = set(problems(cfg, 5000, heldout=False))
    assert len(held) == cfg.heldout_problems  # distinct
    assert not held & train
    assert all(is_heldout(p, cfg.heldout_frac) for p in held)
    # the share of the space that is held out is close to heldout_frac (the split is a hash, not a rule)
    space = [Problem(a, "+", b) for a in range(10, 60) for b in range(10, 60)]
    assert abs(sum(is_heldout(p, 0.2) for p in space) / len(space) - 0.2) < 0.03


def test_exact_check_parses_the_first_integer():
    assert parse_answer("It is 432.") == 432 and parse_answer("-7 apples") == -7 and parse_answer("none") is None
    assert verify_answer("432", 432) and verify_answer("432 and more", 432)
    assert not verify_answer("43", 432) and not verify_answer("4320", 432) and not verify_answer("", 432)
    assert not verify_answer("431 432", 432)  # the first number is the answer: no credit for listing guesses


def test_problems_are_seeded_and_chance_is_low():
    cfg = SkillConfig()
    assert problems(cfg, 50, True) == problems(cfg, 50, True)
    assert problems(cfg, 50, True, seed=1) != problems(cfg, 50, True)
    assert chance_accuracy(cfg) < 0.05  # no single answer solves the task


def test_bad_skill_config_is_one_clear_error():
    with pytest.raises(ValueError, match="min_operand"):
        SkillConfig(min_operand=50, max_operand=10).validate()
    with pytest.raises(ValueError, match="ops"):
        SkillConfig(ops="*").validate()
    with pytest.raises(ValueError, match="heldout_problems"):
        SkillConfig(min_operand=1, max_operand=5, heldout_problems=500).validate()


def test_verifier_reward_scores_exactly(tok):
    from llm_from_scratch.align.chat import encode_prompt, end_id

    end = end_id(tok)
    p = Problem(12, "+", 30)
    ids = encode_prompt(tok, p.prompt())
    reward = verifier_reward(tok, {tuple(ids): p.answer}, format_bonus=0.5)
    replies = [[*tok.encode("42"), end], tok.encode("42"), [*tok.encode("41"), end], [*tok.encode("42 ok"), end]]
    # right + well-formed, right but not ended, wrong but well-formed (the format term pays format, not answers),
    # right with words after it
    assert reward([ids] * 4, replies).tolist() == [1.5, 1.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="not one of the skill problems"):
        reward([ids[:-1]], [replies[0]])


def test_skill_accuracy_counts_the_verified_replies(tok, model):
    items = heldout_problems(dataclasses.replace(SkillConfig(), heldout_problems=6))
    r = skill_accuracy(model, tok, items, max_new_tokens=4)
    assert r["problems"] == 6 and len(r["replies"]) == 6
    assert r["accuracy"] == sum(verify_answer(t, p.answer) for t, p in zip(r["replies"], items, strict=True)) / 6
    assert skill_accuracy(model, tok, items, max_new_tokens=4, reference=model)["kl"] == pytest.approx(0, abs=1e-5)


def test_sft_mix_adds_the_skill_examples(tok):
    from llm_from_scratch.align.sft import SFTConfig, mix_skill

    cfg = SFTConfig(skill=SkillConfig(train_examples=40))
    dialogue = [([1, 2], [3, 4])] * 10
    mixed = mix_skill(tok, dialogue, cfg)
    assert len(mixed) == 50 and mixed == mix_skill(tok, dialogue, cfg)
    answers = {str(ex.response) for ex in train_examples(cfg.skill)}
    decoded = {tok.decode(r[:-1]) for _, r in mixed if (_, r) not in dialogue}
    assert decoded <= answers and torch.tensor(len(decoded)) > 1


def test_second_operand_range_is_the_easier_family():
    cfg = SkillConfig(min_operand=100, max_operand=999, min_second=1, max_second=9).validate()
    drawn = problems(cfg, 400, heldout=False)
    assert all(1 <= min(p.a, p.b) <= 9 and 100 <= max(p.a, p.b) <= 999 for p in drawn)
    assert {p.op for p in drawn} == {"+", "-"} and all(p.answer >= 0 for p in drawn)
    with pytest.raises(ValueError, match="min_second"):
        SkillConfig(min_second=9, max_second=2).validate()
    with pytest.raises(ValueError, match="heldout_problems"):  # 10 x 5 x 2 problems: too few to hold out 500
        SkillConfig(min_operand=10, max_operand=19, min_second=1, max_second=5).validate()


def test_token_batches_fill_the_budget_with_neighbours():
    from llm_from_scratch.align.sft import _token_run

    data = [([0] * 10, [0] * 5)] * 50 + [([0] * 100, [0] * 50)] * 10  # 15-token and 150-token examples
    order = list(range(len(data)))
    short, long = _token_run(order, data, 0, 300), _token_run(order, data, 55, 300)
    assert len(short) == 20 and all(i < 50 for i in short)  # 20 x 15 = 300 tokens of short examples
    assert len(long) == 2 and all(i >= 50 for i in long)  # 2 x 150: the end of the list widens to the left
    assert _token_run(order, data, 59, 10) == [59]  # over budget alone: still one row


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_sft_on_token_batches_learns_the_skill_examples(tok, model, optimizer):
    from llm_from_scratch.align.sft import SFTConfig, mix_skill, reply_loss, train_sft

    skill = SkillConfig(min_operand=100, max_operand=999, min_second=1, max_second=9, train_examples=200)
    cfg = SFTConfig(steps=30, lr=3e-3, batch_tokens=600, optimizer=optimizer, skill=skill, eval_interval=30)
    data = mix_skill(tok, [], cfg.validate())
    before = reply_loss(model, data[:64])
    log = train_sft(model, data, data[:64], cfg)
    assert log[-1]["val_reply_loss"] < before - 0.5  # both optimizers fit the answers' digits
    with pytest.raises(ValueError, match="optimizer"):
        SFTConfig(optimizer="sgd").validate()
