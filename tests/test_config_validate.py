"""Stage configs refuse values outside their ranges with one line naming the field (before any stage runs)."""

from __future__ import annotations

import dataclasses

import pytest

from llm_from_scratch.align.dpo import DPOConfig
from llm_from_scratch.align.grpo import GRPOConfig
from llm_from_scratch.align.preferences import PreferenceConfig
from llm_from_scratch.align.reward import RewardConfig
from llm_from_scratch.align.sft import SFTConfig
from llm_from_scratch.train.trainer import TrainConfig

BAD = [
    (TrainConfig, "max_steps", 0),
    (TrainConfig, "max_steps", -1),
    (TrainConfig, "batch_size", 0),
    (TrainConfig, "grad_accum", 0),
    (TrainConfig, "block_size", 0),
    (TrainConfig, "peak_lr", 0.0),
    (TrainConfig, "warmup_frac", 1.5),
    (TrainConfig, "eval_interval", 0),
    (TrainConfig, "betas", (0.9, 1.0)),
    (TrainConfig, "autocast", "fp8"),
    (TrainConfig, "optimizer", "sgd"),
    (SFTConfig, "steps", 0),
    (SFTConfig, "batch_size", -3),
    (SFTConfig, "lr", -1e-4),
    (SFTConfig, "max_reply", 0),
    (DPOConfig, "beta", 0.0),
    (DPOConfig, "epochs", 0),
    (GRPOConfig, "group_size", 1),
    (GRPOConfig, "clip", 1.0),
    (GRPOConfig, "temperature", 0.0),
    (RewardConfig, "held_out_frac", 1.0),
    (RewardConfig, "batch_pairs", 0),
    (PreferenceConfig, "samples_per_prompt", 1),
    (PreferenceConfig, "n_prompts", 0),
]


@pytest.mark.parametrize("cls", sorted({c for c, _, _ in BAD}, key=lambda c: c.__name__))
def test_defaults_are_valid(cls):
    assert cls().validate() == cls()


@pytest.mark.parametrize("cls, name, value", BAD, ids=[f"{c.__name__}.{n}={v}" for c, n, v in BAD])
def test_out_of_range_value_is_one_error_naming_the_field(cls, name, value):
    config = dataclasses.replace(cls(), **{name: value})
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name} = .* is out of range: it must be") as err:
        config.validate()
    assert "\n" not in str(err.value)


def test_an_optional_field_left_unset_is_valid():
    assert TrainConfig(block_size=None, eval_batch_size=None).validate().block_size is None
