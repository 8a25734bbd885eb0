"""The speedrun harness: nanoGPT's reference model has nanoGPT's size, the text is found or the error says where
to put it, and alternating runs (stop, checkpoint, resume) give the losses of uninterrupted ones."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from llm_from_scratch.experiments import speedrun
from llm_from_scratch.experiments.speedrun import NANOGPT, GPT2Reference, Recipe, race, summary
from llm_from_scratch.train.data import char_data
from llm_from_scratch.train.trainer import train

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 60


def test_reference_has_nanogpts_parameter_count():
    model = Recipe("ref", arch="gpt2").build(65)  # tiny-shakespeare has 65 distinct characters
    assert isinstance(model, GPT2Reference)
    total = sum(p.numel() for p in model.parameters())
    # nanoGPT prints "number of parameters: 0.80M" for this run; it leaves the position embeddings out
    assert round((total - model.wpe.weight.numel()) / 1e6, 2) == 0.80
    ours = sum(p.numel() for p in Recipe("ours").build(65).parameters())
    assert abs(ours - total) / total < 0.02  # the Llama row is compared at the same size


def test_missing_text_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(speedrun.TEXT_ENV, str(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match="tinyshakespeare"):
        speedrun.speedrun_data()


def test_race_alternates_without_changing_any_run(tmp_path):
    data = char_data(TEXT)
    small = dataclasses.replace(NANOGPT, max_steps=12, block_size=16, batch_size=4)
    recipes = [
        Recipe("ref", arch="gpt2", d_model=32, n_layers=1, n_heads=2, train=small),
        Recipe("ours", d_model=32, n_layers=1, n_heads=2, train=dataclasses.replace(small, optimizer="muon")),
    ]
    raced = race(recipes, data, target=3.3, eval_every=4, eval_batches=2, eval_batch_size=4, rounds=3)
    for recipe, got in zip(recipes, raced, strict=True):
        cfg = dataclasses.replace(recipe.train, eval_interval=4, eval_batches=2, eval_batch_size=4, log_interval=1)
        torch.manual_seed(cfg.seed)
        alone = train(
            recipe.model_config(data.vocab_size),
            data,
            cfg,
            None,
            model=recipe.build(data.vocab_size),
            device="cpu",
            progress=False,
            sample_fn=lambda m: "",
        )
        want = summary(recipe, alone.records, target=3.3)
        assert [c[:2] for c in got["curve"]] == [c[:2] for c in want["curve"]]
        assert got["final_val_loss"] == want["final_val_loss"]
        assert got["steps_to_target"] == want["steps_to_target"] is not None
        assert 0 < got["seconds_to_target"] <= got["seconds_total"]


def test_ratios_fall_back_to_the_references_own_final_loss():
    ref = {
        "final_val_loss": 1.93,
        "seconds_to_target": None,
        "seconds_total": 110.0,
        "curve": [(0, 4.2, 0.0), (10, 2.0, 50.0), (20, 1.93, 100.0)],
    }
    ours = {
        "final_val_loss": 1.8,
        "seconds_to_target": 30.0,
        "curve": [(0, 4.2, 0.0), (5, 1.95, 20.0), (10, 1.8, 30.0)],
    }
    finish = speedrun.add_ratios([ref, ours])
    assert finish == {"reference_final_val_loss": 1.93, "reference_seconds_to_final": 100.0}
    assert ours["time_ratio"] is None  # the reference never reached the target
    assert ours["seconds_to_reference_final"] == 30.0 and ours["time_ratio_at_reference_final"] == 0.3
    # the reference would need more than its whole run (110 s) to reach the target: 30 / 110 bounds the ratio there
    assert ours["time_ratio_at_target_upper_bound"] == round(30.0 / 110.0, 4)


def _changes(before: Recipe, after: Recipe) -> list[str]:
    """The fields (shape, model options, training config) in which `after` differs from `before`."""
    shape = [f for f in ("arch", "d_model", "n_layers", "n_heads") if getattr(before, f) != getattr(after, f)]
    options = [
        k
        for k in {**before.model_options, **after.model_options}
        if before.model_options.get(k) != after.model_options.get(k)
    ]
    b, a = before.train.to_dict(), after.train.to_dict()
    return shape + options + [k for k in a if a[k] != b.get(k)]


def test_ablation_rows_build_on_each_other_and_change_what_they_name():
    rows = speedrun.ABLATION
    assert rows[0] is speedrun.REFERENCE and rows[-1] is speedrun.BEST
    assert speedrun.BEST_TO_TARGET in rows
    assert _changes(rows[0], rows[1]) == ["arch"]  # the Llama row: nanoGPT's recipe unchanged
    # a row may set a few fields that belong together (a tuned rate with its schedule); it never silently
    # carries a change the row's name does not announce, e.g. the 2-block row keeps every training setting
    for before, after in itertools.pairwise(rows[1:]):
        changed = _changes(before, after)
        assert changed, f"{after.name!r} changes nothing"
        if after.name.startswith("+ 2 blocks"):
            assert changed == ["n_layers"]
        if after.name.startswith("+ Muon momentum"):
            assert changed == ["muon_momentum"]
        if after.name.startswith("+ untied"):
            assert changed == ["tie_embeddings"]
