"""The IsoFLOP harness: shapes are valid models, a run spends its budget, and the profile fit finds a known
minimum."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llm_from_scratch.experiments import scaling
from llm_from_scratch.experiments.scaling import Shape, describe, fit_profile, power_law, predict, run_point
from llm_from_scratch.train.data import TokenData


@pytest.mark.parametrize("d, layers", [(96, 2), (128, 2), (192, 3), (256, 4), (320, 5)])
def test_shapes_are_valid_models(d, layers):
    info = describe(Shape(d, layers).config(8192))
    assert info["params"] > info["params_non_embedding"] > 0
    assert 0 < info["head_flop_fraction"] < 1


def test_the_book_shape_matches_the_book_model():
    info = describe(Shape(256, 4).config(8192))
    assert info["params"] == 5_048_576  # the book preset's 4 x 256 model
    assert round(info["head_flop_fraction"], 2) == 0.38


def test_fit_finds_the_vertex_of_a_parabola():
    ns = [1e6, 2e6, 4e6, 8e6]
    rows = [{"params": n, "val_loss": 5.0 + 0.3 * (np.log10(n) - np.log10(3e6)) ** 2} for n in ns]
    fit = fit_profile(rows)
    assert fit["vertex"] and fit["inside"]
    assert fit["n_opt"] == pytest.approx(3e6, rel=1e-6)
    assert fit["loss_opt"] == pytest.approx(5.0)


def test_power_law_through_its_own_points():
    law = power_law([1e12, 1e13], [1e6, 10**6.5])
    assert law["alpha"] == pytest.approx(0.5)
    assert predict(law, 1e14) == pytest.approx(1e7)


def test_run_point_spends_the_budget(monkeypatch):
    rng = np.random.default_rng(0)
    data = TokenData(rng.integers(0, 64, 20_000), rng.integers(0, 64, 5_000), 64, 1.0, "test")
    monkeypatch.setattr(scaling, "RECIPE", dataclasses.replace(scaling.RECIPE, eval_batches=1, eval_batch_size=2))
    shape = Shape(32, 1)
    flops = describe(shape.config(64))["flops_per_token"]
    budget = flops * 1024 * 25  # 25 steps of 4 x 256 tokens
    row = run_point(shape, budget, data, scaling.RECIPE)
    assert row["steps"] == 25 and row["flops"] == pytest.approx(budget)
    assert np.isfinite(row["val_loss"]) and row["val_bpb"] > 0


def test_the_recipe_resumes_bit_for_bit(tmp_path):
    """The sweep's (and the book preset's) recipe: Muon, warmup-stable-decay, zero-initialised projections."""
    from llm_from_scratch.train.data import char_data
    from llm_from_scratch.train.trainer import train

    data = char_data("To be, or not to be, that is the question.\n" * 80)
    config = Shape(32, 1).config(data.vocab_size, context_length=32)
    assert config.zero_init_proj
    cfg = dataclasses.replace(scaling.RECIPE, max_steps=8, eval_interval=4, log_interval=1, ckpt_interval=3)
    full = train(config, data, cfg, tmp_path / "full", progress=False)
    train(config, data, cfg, tmp_path / "split", stop_at=5, progress=False)
    resumed = train(config, data, cfg, tmp_path / "split", progress=False)
    losses = [[r["loss"] for r in run.records if "loss" in r] for run in (full, resumed)]
    assert losses[0] == losses[1] and len(losses[0]) == 8
