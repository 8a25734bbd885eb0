"""The command-line entry point and the shared helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llm_from_scratch import __version__
from llm_from_scratch.cli import COMMANDS, main
from llm_from_scratch.pipeline import PIPELINE, draw_pipeline
from llm_from_scratch.utils import atomic_path, autocast_dtype, cache_dir, config_key, pick_device, seed_everything


def test_version_flag_via_python_m():
    out = subprocess.run(
        [sys.executable, "-m", "llm_from_scratch", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"llm-from-scratch {__version__}"


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "info" in text
    assert len(COMMANDS) >= 1
    for stage in ("curate", "tokenizer", "shards", "pretrain", "sft", "dpo", "rlhf", "eval", "run", "chat"):
        assert f"    {stage} " in text or f"    {stage}\n" in text, stage


def test_info_prints_device_and_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_FROM_SCRATCH_CACHE", str(tmp_path / "c"))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "device: cpu" in out or "device: cuda" in out or "device: mps" in out
    assert str(tmp_path / "c") in out


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_FROM_SCRATCH_CACHE", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    assert (tmp_path / "x").is_dir()


def test_seed_everything_makes_torch_and_numpy_repeat():
    import numpy as np

    seed_everything(3)
    a = (torch.rand(3), np.random.rand(3))
    seed_everything(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all()


def test_pick_device_rejects_unknown_and_unavailable():
    assert pick_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="not available"):
            pick_device("cuda")


def test_autocast_dtype_is_a_low_precision_type_or_none():
    assert autocast_dtype("cpu") in (None, torch.bfloat16)


def test_config_key_is_stable_and_sensitive():
    assert config_key({"a": 1, "b": 2}) == config_key({"b": 2, "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path: Path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target], "the temporary file must be cleaned up"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_pipeline_figure_has_one_box_per_stage():
    import matplotlib

    matplotlib.use("Agg")
    fig = draw_pipeline()
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {s.title for s in PIPELINE} <= texts
