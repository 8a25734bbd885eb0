"""The trainer's entry points in a world of one (under torchrun: test_trainer_parallel.py)."""

from __future__ import annotations

import pytest

from llm_from_scratch.distributed.launch import DistEnv
from llm_from_scratch.distributed.parallel import is_data_parallel, wrap_model
from llm_from_scratch.model import Transformer
from llm_from_scratch.pipeline import preset_config


def test_world_of_one_returns_the_plain_model():
    model = Transformer(preset_config("tiny").model)
    env = DistEnv(0, 0, 1, "none", "cpu")
    for strategy in ("ddp", "fsdp", "tp"):
        assert wrap_model(model, strategy, env) is model
    with pytest.raises(ValueError, match="unknown parallel strategy 'zero4'"):
        wrap_model(model, "zero4", env)
    assert is_data_parallel("fsdp") and not is_data_parallel("tp")
