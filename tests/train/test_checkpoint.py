"""Checkpoints: round trip, atomic writes under SIGKILL, and one clear error for corrupt or mismatched ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from llm_from_scratch.model import Transformer
from llm_from_scratch.pipeline import preset_config
from llm_from_scratch.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from llm_from_scratch.train.optim import AdamW, param_groups


def _trained(config, steps: int = 3):
    torch.manual_seed(0)
    model = Transformer(config)
    opt = AdamW(param_groups(model, 0.1), lr=1e-3)
    for _ in range(steps):
        x = torch.randint(0, config.vocab_size, (2, 16))
        model(x, x)[1].backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path, tiny_config):
    model, opt = _trained(tiny_config)
    torch.manual_seed(123)
    path = save_checkpoint(tmp_path, 3, model, opt, tiny_config, {"tokenizer_fingerprint": "abc"})
    expected_rand = torch.rand(3)
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "manifest.json",
        "model.safetensors",
        "train_state.json",
        "train_state.safetensors",
    ]
    model2 = Transformer(tiny_config)
    opt2 = AdamW(param_groups(model2, 0.1), lr=1e-3)
    state = load_checkpoint(latest_checkpoint(tmp_path), model2, opt2, expect={"tokenizer_fingerprint": "abc"})
    assert state["step"] == 3
    assert torch.equal(torch.rand(3), expected_rand)  # the torch RNG continues where it was saved
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert model2.lm_head.weight is model2.tok_emb.weight  # tying survives (stored once)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for i in s1["state"]:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1["state"][i][k], s2["state"][i][k])
    assert s1["param_groups"] == s2["param_groups"]


def test_load_model_rebuilds_from_config(tmp_path, tiny_config):
    model, _ = _trained(tiny_config)
    save_model(tmp_path / "m", model, tiny_config)
    loaded = load_model(tmp_path / "m")
    x = torch.randint(0, tiny_config.vocab_size, (1, 8))
    assert torch.equal(model.eval()(x)[0], loaded(x)[0])


def test_loading_never_unpickles(tmp_path, tiny_config, monkeypatch):
    import pickle

    model, opt = _trained(tiny_config)
    path = save_checkpoint(tmp_path, 3, model, opt, tiny_config)
    for f in ("model.safetensors", "train_state.safetensors"):  # safetensors: 8-byte header length, JSON header
        raw = (path / f).read_bytes()
        json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint load tried to unpickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    fresh = Transformer(tiny_config)
    load_checkpoint(path, fresh, AdamW(param_groups(fresh, 0.1)))


def test_keeps_only_the_last_checkpoints(tmp_path, tiny_config):
    model, opt = _trained(tiny_config, 1)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, opt, tiny_config, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000003"]
    assert latest_checkpoint(tmp_path).name == "step-00000003"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: _flip_byte(p / "model.safetensors"), "corrupt"),
        (lambda p: _truncate(p / "train_state.safetensors"), "corrupt"),
        (lambda p: (p / "train_state.json").write_text("{not json"), "corrupt"),
        (lambda p: (p / "model.safetensors").unlink(), "incomplete"),
    ],
)
def test_corrupt_checkpoint_gives_one_clear_error(tmp_path, tiny_config, damage, message):
    model, opt = _trained(tiny_config)
    path = save_checkpoint(tmp_path, 3, model, opt, tiny_config)
    damage(path)
    with pytest.raises(CheckpointError, match=message):
        fresh = Transformer(tiny_config)
        load_checkpoint(path, fresh, AdamW(param_groups(fresh, 0.1)))


def test_mismatched_model_or_tokenizer_gives_one_clear_error(tmp_path, tiny_config):
    model, opt = _trained(tiny_config)
    path = save_checkpoint(tmp_path, 3, model, opt, tiny_config, {"tokenizer_fingerprint": "abc"})
    other = tiny_config.replace(d_model=32, ffn_hidden=96)
    with pytest.raises(CheckpointError, match=r"different model \(.*d_model: checkpoint 64 vs model 32"):
        load_checkpoint(path, Transformer(other))
    with pytest.raises(CheckpointError, match="tokenizer_fingerprint is 'abc' in the checkpoint but 'xyz'"):
        load_checkpoint(path, Transformer(tiny_config), expect={"tokenizer_fingerprint": "xyz"})
    # weights that do not fit although config.json claims they do (e.g. a hand-edited config)
    (path / "config.json").write_text(json.dumps(other.to_dict()))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(path, Transformer(other))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    import llm_from_scratch.train.checkpoint as ckpt
    from llm_from_scratch.model import Transformer
    from llm_from_scratch.pipeline import preset_config
    from llm_from_scratch.train.optim import AdamW, param_groups

    run_dir, marker = Path(sys.argv[1]), Path(sys.argv[2])
    config = preset_config("tiny").model
    model = Transformer(config)
    opt = AdamW(param_groups(model, 0.1))
    model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
    opt.step()
    ckpt.save_checkpoint(run_dir, 1, model, opt, config)  # a complete checkpoint
    import llm_from_scratch.model.checkpoint as model_ckpt

    real_save = model_ckpt.save_file

    def slow_save(tensors, path, metadata=None):  # write the first file, then hang: the parent kills us here
        real_save(tensors, path, metadata=metadata)
        marker.write_text(str(path))
        time.sleep(60)

    model_ckpt.save_file = slow_save
    opt.step()
    ckpt.save_checkpoint(run_dir, 2, model, opt, config)
    """
)


def test_sigkill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(run_dir), str(marker)])
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, "the writer exited before reaching the save"
            assert time.time() < deadline, "the writer never reached the second save"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)  # mid-save: one file of step 2 is on disk, under a temporary name
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert Path(marker.read_text()).parent.name.endswith(".tmp")  # it was writing into the temporary directory
    assert any(run_dir.glob(".step-00000002.*.tmp"))  # the half-written checkpoint is still there...
    latest = latest_checkpoint(run_dir)
    assert latest.name == "step-00000001"  # ...but nothing points to it
    state = load_checkpoint(latest, Transformer(preset_config("tiny").model))
    assert state["step"] == 1


def _three_checkpoints(run_dir: Path, config) -> None:
    model, opt = _trained(config, 1)
    for step in (1, 2, 3):
        save_checkpoint(run_dir, step, model, opt, config, {"tokenizer_fingerprint": "abc"}, keep=3)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: _flip_byte(p / "model.safetensors"), "SHA-256 of model.safetensors"),
        (lambda p: _truncate(p / "train_state.safetensors"), "SHA-256 of train_state.safetensors"),
        (lambda p: (p / "train_state.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "config.json").unlink(), "config.json is missing"),
        (lambda p: __import__("shutil").rmtree(p), "which does not exist"),  # deleted, as the old error advised
    ],
)
def test_resume_falls_back_to_the_newest_intact_checkpoint_and_says_so(tmp_path, tiny_config, caplog, damage, reason):
    _three_checkpoints(tmp_path, tiny_config)
    damage(tmp_path / "step-00000003")
    with caplog.at_level("WARNING", logger="llm_from_scratch.train.checkpoint"):
        found = latest_checkpoint(tmp_path)
    assert found.name == "step-00000002"
    assert reason in caplog.text and "resuming from" in caplog.text and "step-00000002" in caplog.text
    state = load_checkpoint(found, Transformer(tiny_config))
    assert state["step"] == 2


def test_intact_latest_checkpoint_is_used_without_a_warning(tmp_path, tiny_config, caplog):
    _three_checkpoints(tmp_path, tiny_config)
    (tmp_path / "latest.json").unlink()  # a pointer lost on its own: the newest step folder still verifies
    with caplog.at_level("WARNING"):
        assert latest_checkpoint(tmp_path).name == "step-00000003"
    assert caplog.text == ""


def test_no_intact_checkpoint_is_one_error_and_none_left_starts_over(tmp_path, tiny_config, caplog):
    _three_checkpoints(tmp_path, tiny_config)
    for p in tmp_path.glob("step-*"):
        _flip_byte(p / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"holds no intact checkpoint .*step-00000003, step-00000002"):
        latest_checkpoint(tmp_path)
    for p in tmp_path.glob("step-*"):
        __import__("shutil").rmtree(p)
    with caplog.at_level("WARNING"):
        assert latest_checkpoint(tmp_path) is None
    assert "starting from step 0" in caplog.text
    assert latest_checkpoint(tmp_path / "never-ran") is None


def test_training_resumes_past_a_damaged_checkpoint_to_the_same_weights(tmp_path, char_data, tiny_config, caplog):
    """A damaged last checkpoint costs the steps since the one before it: the resumed run still ends bit-identical."""
    from llm_from_scratch.train.trainer import TrainConfig, train

    config = TrainConfig(max_steps=9, batch_size=4, eval_interval=3, eval_batches=1, log_interval=3, ckpt_interval=3)
    full = train(tiny_config, char_data, config, tmp_path / "full", progress=False)
    train(tiny_config, char_data, config, tmp_path / "split", stop_at=6, progress=False)
    assert sorted(p.name for p in (tmp_path / "split").glob("step-*")) == ["step-00000003", "step-00000006"]
    _flip_byte(tmp_path / "split" / "step-00000006" / "model.safetensors")
    with caplog.at_level("WARNING", logger="llm_from_scratch.train.checkpoint"):
        resumed = train(tiny_config, char_data, config, tmp_path / "split", progress=False)
    assert "step-00000006 is corrupt" in caplog.text and "resuming from" in caplog.text
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
