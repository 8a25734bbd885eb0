"""What ``pretrain --parallel`` needs before any process group: rank-aware batches, its own run directory, and one
clear error for a bad launch."""

from __future__ import annotations

import pytest
import torch

from llm_from_scratch.cli import main
from llm_from_scratch.distributed.launch import DistEnv
from llm_from_scratch.distributed.parallel import ParallelRun
from llm_from_scratch.pipeline import preset_config
from llm_from_scratch.train.data import train_batch


@pytest.fixture
def no_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)


@pytest.mark.parametrize("order", ["random", "epochs"])
def test_data_parallel_ranks_split_the_global_batch(char_data, order):
    x, y = train_batch(char_data, 6, 16, seed=3, step=5, micro=1, grad_accum=2, device="cpu", order=order)  # 1 x 6
    parts = [train_batch(char_data, 2, 16, 3, 5, 1, 2, "cpu", rank=r, world_size=3, order=order) for r in range(3)]
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(torch.cat([p[0] for p in parts]), x)  # 3 ranks x 2 = the same 6 windows, in rank order
    assert torch.equal(torch.cat([p[1] for p in parts]), y)
    with pytest.raises(ValueError, match=r"rank 3 is outside 0\.\.2"):
        train_batch(char_data, 2, 16, 3, 5, 1, 2, "cpu", rank=3, world_size=3)


def test_parallel_pretraining_is_keyed_by_strategy_and_world():
    from types import SimpleNamespace

    from llm_from_scratch.pipeline import Artifacts

    one = Artifacts("tiny")
    runs = [
        Artifacts("tiny", overrides={"run": {"parallel": p}}, env=SimpleNamespace(world_size=w, device="cpu"))
        for p, w in (("fsdp", 2), ("fsdp", 4), ("ddp", 2))
    ]
    assert len({one.key("pretrain"), *(r.key("pretrain") for r in runs)}) == 4
    assert {r.key("shards") for r in runs} == {one.key("shards")}  # the data stages are shared
    assert {r.key("sft") for r in runs} != {one.key("sft")}  # downstream of another model


def test_parallel_without_torchrun_says_how_to_launch(no_torchrun, capsys):
    assert main(["pretrain", "--preset", "tiny", "--parallel", "fsdp", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "launch it with torchrun" in err
    command = "torchrun --standalone --nproc_per_node=2 -m llm_from_scratch.cli pretrain --preset tiny --parallel fsdp"
    assert command in err
    assert len(err.strip().splitlines()) == 1


def test_torchrun_without_parallel_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["pretrain", "--preset", "tiny", "--quiet"]) == 2
    assert "pass --parallel ddp, fsdp or tp" in capsys.readouterr().err


def test_tensor_parallel_world_must_divide_the_heads():
    env = DistEnv(0, 0, 4, "gloo", "cpu")  # checked before any collective: no process group needed
    with pytest.raises(ValueError, match=r"n_kv_heads=2 divisible by 4.*--nproc_per_node in \[2\]"):
        ParallelRun.start("tp", preset_config("tiny").model, env)
    assert ParallelRun.start("fsdp", preset_config("tiny").model, env).data_world == 4
    with pytest.raises(ValueError, match="unknown parallel strategy"):
        ParallelRun.start("zero4", preset_config("tiny").model, env)
