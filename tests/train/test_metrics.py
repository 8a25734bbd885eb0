"""Reported metrics and the autocast decision."""

from __future__ import annotations

import math

import pytest
import torch

from llm_from_scratch.train import trainer
from llm_from_scratch.train.metrics import bits_per_byte, measured_peak_flops, perplexity


def test_bits_per_byte_and_perplexity():
    assert perplexity(math.log(65)) == pytest.approx(65)  # uniform over 65 characters
    assert bits_per_byte(math.log(65), 1.0) == pytest.approx(math.log2(65))
    # 4 bytes per token: the same loss per token costs a quarter as many bits per byte
    assert bits_per_byte(2.0, 4.0) == pytest.approx(2.0 / math.log(2) / 4)


def test_measured_peak_is_a_plausible_flop_rate():
    peak = measured_peak_flops("cpu", torch.float32, n=256, reps=2)
    assert 1e8 < peak < 1e14


def test_autocast_choice(monkeypatch):
    assert trainer.choose_autocast("off", "cuda", 4096) is None
    assert trainer.choose_autocast("bf16", "cpu", 64) is torch.bfloat16
    monkeypatch.setattr(trainer, "autocast_dtype", lambda device: torch.bfloat16)
    monkeypatch.setattr(trainer, "_cpu_has_amx", lambda: False)
    assert trainer.choose_autocast("auto", "cpu", 512) is None  # bf16 without AMX measured slower than fp32
    monkeypatch.setattr(trainer, "_cpu_has_amx", lambda: True)
    assert trainer.choose_autocast("auto", "cpu", 128) is None  # too narrow: conversions dominate
    assert trainer.choose_autocast("auto", "cpu", 512) is torch.bfloat16
    assert trainer.choose_autocast("auto", "cuda", 64) is torch.bfloat16
    with pytest.raises(ValueError, match="autocast"):
        trainer.choose_autocast("fp8", "cpu", 64)
