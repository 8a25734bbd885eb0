"""Megatron-style tensor parallelism from scratch and with DTensor vs the unsharded model."""

from __future__ import annotations

import pytest
import torch

from llm_from_scratch.distributed.tensor_parallel import (
    check_tp_shapes,
    gate_up_shard_rows,
    proj_shard_cols,
    qkv_shard_rows,
)
from llm_from_scratch.model import ModelConfig
from llm_from_scratch.pipeline import preset_config


@pytest.mark.parametrize("heads,kv,tp", [(4, 2, 2), (8, 2, 2), (8, 4, 4), (4, 4, 2)])
def test_qkv_shards_partition_the_fused_weight(heads, kv, tp):
    c = ModelConfig(d_model=64, n_heads=heads, n_kv_heads=kv, ffn_hidden=128)
    rows = [qkv_shard_rows(c, r, tp) for r in range(tp)]
    assert torch.equal(torch.cat(rows).sort().values, torch.arange((heads + 2 * kv) * c.head_dim))
    d, h, k = c.head_dim, heads // tp, kv // tp
    for r, idx in enumerate(rows):
        q_heads = idx[: h * d].view(h, d)[:, 0] // d
        kv_heads = (idx[h * d : (h + k) * d].view(k, d)[:, 0] - heads * d) // d
        # every query head of this rank attends with a kv head this rank holds (grouped-query mapping h // (H/K))
        assert set((q_heads // (heads // kv)).tolist()) == set(kv_heads.tolist())
        assert torch.equal(proj_shard_cols(c, r, tp), idx[: h * d])


def test_gate_up_shards_pair_gate_and_up_units():
    rows = gate_up_shard_rows(hidden=6, rank=1, tp=2)
    assert rows.tolist() == [3, 4, 5, 9, 10, 11]


def test_indivisible_heads_are_a_clear_error():
    with pytest.raises(ValueError, match="n_kv_heads=2 divisible by 4"):
        check_tp_shapes(preset_config("tiny").model, 4)


@pytest.mark.parametrize("task", ["tp", "dtensor"])
def test_tensor_parallel_equals_unsharded_model(run_job, task):
    r = run_job(task, "--batch", "4", "--seq", "32")
    assert r["sharded_matrices"] == 4 * preset_config("tiny").model.n_layers
    assert r["logits_diff"] < 1e-5
    assert r["loss_diff"] < 1e-5
    assert r["grad_diff"] < 1e-5
    assert r["params_per_rank"] < r["params_full"]
