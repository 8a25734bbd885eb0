"""The trainer's entry points: wrap_model for each strategy, under torchrun and in a world of one."""

from __future__ import annotations

import pytest

from llm_from_scratch.distributed.launch import DistEnv
from llm_from_scratch.distributed.parallel import is_data_parallel, wrap_model
from llm_from_scratch.model import PRESETS, Transformer


def test_world_of_one_returns_the_plain_model():
    model = Transformer(PRESETS["tiny"])
    env = DistEnv(0, 0, 1, "none", "cpu")
    for strategy in ("ddp", "fsdp", "tp"):
        assert wrap_model(model, strategy, env) is model
    with pytest.raises(ValueError, match="unknown parallel strategy 'zero4'"):
        wrap_model(model, "zero4", env)
    assert is_data_parallel("fsdp") and not is_data_parallel("tp")


def test_ddp_and_fsdp_train_identically(run_job):
    runs = {
        p: run_job("train", "--parallel", p, "--steps", "3", "--batch", "4", "--seq", "32") for p in ("ddp", "fsdp")
    }
    assert runs["ddp"]["losses"] == pytest.approx(runs["fsdp"]["losses"], abs=1e-3)
    assert len(runs["ddp"]["losses"]) == 3
