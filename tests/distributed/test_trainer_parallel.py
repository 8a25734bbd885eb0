"""The real trainer under torchrun (``train(..., parallel=...)``, what ``pretrain --parallel`` runs) against the
single-process trainer: same losses, gradient norms and validation losses; checkpoints a single process loads;
exact resume, also under another strategy."""

from __future__ import annotations

import json

import pytest
import torch

from llm_from_scratch.distributed.launch import DistEnv
from llm_from_scratch.distributed.sharded_state import global_grad_norm, named_params
from llm_from_scratch.experiments.distributed_harness import parse_args, train_setup
from llm_from_scratch.model import Transformer
from llm_from_scratch.pipeline import preset_config
from llm_from_scratch.train.trainer import train

# 4 steps of 2 micro-batches of 2 sequences per rank, clipped at 0.5 (the norms start above 2: clipping is active)
ARGS = ["--steps", "4", "--batch", "2", "--grad-accum", "2", "--grad-clip", "0.5", "--seq", "32"]
TOL = 1e-5


def _single(batch: int) -> dict:
    """The single-process run with ``batch`` sequences per micro-batch, as the worker's curve."""
    from llm_from_scratch.experiments.distributed_harness import curve

    args = parse_args(["train", *ARGS])
    model_config, data, config = train_setup(args)
    config = type(config)(**{**config.to_dict(), "batch_size": batch})
    return curve(train(model_config, data, config, progress=False).records)


def _close(run: dict, ref: dict) -> None:
    for key in ("losses", "grad_norms", "val_losses", "tokens"):
        assert run[key] == pytest.approx(ref[key], abs=TOL), key


def test_global_grad_norm_in_one_process_is_clip_grad_norm():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model)
    x = torch.randint(0, 512, (2, 16))
    model(x, x)[1].backward()
    env = DistEnv(0, 0, 1, "none", "cpu")
    ours = global_grad_norm(named_params(model), "none", model.config, env).item()
    theirs = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9).item()
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_data_parallel_trainer_equals_one_process_with_the_global_batch(run_job, tmp_path):
    runs = tmp_path / "runs"
    r = run_job("train", "--parallel", "ddp,fsdp", *ARGS, "--check-checkpoint", "--run-dir", str(runs),
                "--resume", "fsdp:fsdp,fsdp:ddp")  # fmt: skip
    ref = _single(batch=4)  # 2 ranks x 2 sequences = one process with 4
    assert ref["grad_norms"][0] > 0.5  # the clip was active
    for strategy in ("ddp", "fsdp"):
        _close(r["runs"][strategy], ref)  # loss = mean over ranks, global grad norm, tokens of both ranks
        assert r["runs"][strategy]["checkpoint_logits_diff"] == 0.0  # load_model(checkpoint) is the trained model
    assert r["resumed"]["fsdp:fsdp"]["diff_vs_uninterrupted"] == 0.0  # stopped after 2 steps, resumed: bit for bit
    assert r["resumed"]["fsdp:ddp"]["diff_vs_uninterrupted"] < TOL  # an FSDP checkpoint resumed under DDP
    log = [json.loads(line) for line in (runs / "fsdp" / "log.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in log if "loss" in rec] == [1, 2, 3, 4]  # rank 0 alone wrote it
    state = json.loads((runs / "fsdp" / "step-00000004" / "train_state.json").read_text())
    assert state["parallel"] == {"strategy": "fsdp", "world_size": 2, "data_parallel_size": 2}


def test_tensor_parallel_trainer_equals_one_process(run_job):
    r = run_job("train", "--parallel", "tp,tp-dtensor", *ARGS, "--check-checkpoint", "--resume", "tp:tp-dtensor")
    ref = _single(batch=2)  # both ranks read the same batch
    for strategy in ("tp", "tp-dtensor"):
        _close(r["runs"][strategy], ref)
        assert r["runs"][strategy]["checkpoint_logits_diff"] < TOL  # sharded matmuls sum in another order
    assert r["resumed"]["tp:tp-dtensor"]["diff_vs_uninterrupted"] < TOL
