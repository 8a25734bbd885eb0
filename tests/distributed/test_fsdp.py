"""FSDP2 on the book's model: same losses as one process, half the state per rank, checkpoint back to one process."""

from __future__ import annotations


def test_fsdp_matches_single_process_and_checkpoint_reloads(run_job, tmp_path):
    r = run_job("fsdp", "--steps", "5", "--batch", "8", "--seq", "32", "--ckpt", str(tmp_path / "ckpt"))
    assert len(r["losses_fsdp"]) == 5
    assert r["max_loss_diff"] < 1e-5
    assert r["losses_fsdp"][-1] != r["losses_fsdp"][0]  # the model did train
    mem = r["memory_bytes_rank"]
    assert mem["params"] <= 0.51 * mem["params_single"]  # each rank stores half the weights (+ padding)
    assert mem["optimizer"] <= 0.51 * mem["optimizer_single"]
    assert r["reload_logits_diff"] == 0.0  # the full checkpoint is the FSDP model, bit for bit
    assert r["reload_vs_single_training_diff"] < 1e-4
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
