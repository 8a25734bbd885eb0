"""Data parallelism from scratch vs torch DDP vs one process with the full batch."""

from __future__ import annotations

import torch
from torch import nn

from llm_from_scratch.distributed.ddp import make_buckets


def test_buckets_pack_in_reverse_order_under_the_cap():
    params = [nn.Parameter(torch.zeros(n)) for n in (10, 20, 30, 40)]  # 40, 80, 120, 160 bytes
    buckets = make_buckets(params, bucket_cap_bytes=200)
    assert [[p.numel() for p in b] for b in buckets] == [[40], [30, 20], [10]]
    assert make_buckets(params, 10) == [[p] for p in reversed(params)]  # oversized: one parameter per bucket


def test_ddp_gradients_equal_full_batch(run_job):
    r = run_job("ddp", "--batch", "8", "--seq", "32", "--bucket-mb", "0.05")
    assert r["buckets"] > 1  # the bucketed path, not one big all-reduce
    assert r["scratch_vs_single"] < 1e-6
    assert r["torch_ddp_vs_single"] < 1e-6
    assert r["scratch_vs_torch_ddp"] < 1e-6
    assert r["no_sync_accum_vs_single"] < 1e-6  # two micro-batches, one all-reduce
    assert r["bytes_reduced_per_param"] == 4.0  # every fp32 gradient reduced exactly once
