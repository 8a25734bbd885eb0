"""The trainer: it learns, and a resumed run reproduces the uninterrupted loss curve bit for bit on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from llm_from_scratch.train.checkpoint import latest_checkpoint
from llm_from_scratch.train.metrics import bits_per_byte
from llm_from_scratch.train.trainer import TrainConfig, train

CFG = TrainConfig(
    max_steps=12,
    batch_size=4,
    grad_accum=2,
    peak_lr=3e-3,
    warmup_frac=0.1,
    eval_interval=4,
    eval_batches=2,
    log_interval=2,
    ckpt_interval=3,
    seed=7,
)


def _curve(records: list[dict]) -> list[tuple]:
    """Everything deterministic in the log: step, loss, lr, grad norm, validation metrics, samples."""
    keys = ("loss", "lr", "grad_norm", "val_loss", "val_bpb", "sample")
    return [(r["step"], *(r.get(k) for k in keys)) for r in records]


def test_tiny_run_learns_and_logs(tmp_path, char_data, tiny_config):
    result = train(tiny_config, char_data, _with(max_steps=40), tmp_path, progress=False)
    _, val = result.series("val_loss")
    assert val[-1] < val[0] - 0.5  # from ~ln(vocab) down
    assert result.last("val_ppl") == pytest.approx(torch.tensor(val[-1]).exp().item(), rel=1e-6)
    assert result.last("val_bpb") == pytest.approx(bits_per_byte(val[-1], char_data.bytes_per_token))
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert _curve(logged) == _curve(result.records)
    assert {"tok_per_s", "mfu", "grad_norm", "lr"} <= set(logged[1])
    assert isinstance(result.last("sample"), str)


def _with(**changes) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(CFG, **changes)


@pytest.mark.parametrize("sampling", ["random", "epochs"])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, char_data, tiny_config, sampling):
    cfg = _with(sampling=sampling)
    full = train(tiny_config, char_data, cfg, tmp_path / "full", progress=False)
    first = train(tiny_config, char_data, cfg, tmp_path / "split", stop_at=5, progress=False)
    assert latest_checkpoint(tmp_path / "split").name == "step-00000005"
    assert first.records[-1]["step"] <= 5
    resumed = train(tiny_config, char_data, cfg, tmp_path / "split", progress=False)
    assert _curve(resumed.records) == _curve(full.records)  # exact float equality, not approx
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_refuses_a_changed_config(tmp_path, char_data, tiny_config):
    from llm_from_scratch.train.checkpoint import CheckpointError

    train(tiny_config, char_data, CFG, tmp_path, stop_at=3, progress=False)
    with pytest.raises(CheckpointError, match="train_config"):
        train(tiny_config, char_data, _with(peak_lr=1e-3), tmp_path, progress=False)


KILLED_TRAINER = textwrap.dedent(
    """
    import sys, time
    import llm_from_scratch.train.trainer as trainer
    from llm_from_scratch.train.data import char_data
    from llm_from_scratch.pipeline import preset_config
    sys.path.insert(0, sys.argv[2])
    from conftest import TEXT
    from test_trainer import CFG

    data = char_data(TEXT)
    config = preset_config("tiny").model.replace(vocab_size=data.vocab_size, context_length=32)
    real_save = trainer.save_checkpoint

    def save_then_wait(run_dir, step, *args, **kwargs):  # slow the run down after each checkpoint
        real_save(run_dir, step, *args, **kwargs)
        time.sleep(0.5)

    trainer.save_checkpoint = save_then_wait
    trainer.train(config, data, CFG, sys.argv[1], progress=False)
    """
)


def test_resume_after_sigkill_reproduces_the_run(tmp_path, char_data, tiny_config):
    run_dir = tmp_path / "killed"
    here = os.path.dirname(__file__)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_TRAINER, str(run_dir), here])
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, "the training process ended before it was killed"
            assert time.time() < deadline
            pointer = run_dir / "latest.json"
            if pointer.exists() and json.loads(pointer.read_text())["step"] >= 6:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = json.loads((run_dir / "latest.json").read_text())["step"]
    assert 6 <= killed_at < CFG.max_steps
    resumed = train(tiny_config, char_data, CFG, run_dir, progress=False)
    full = train(tiny_config, char_data, CFG, tmp_path / "full", progress=False)
    assert _curve(resumed.records) == _curve(full.records)
