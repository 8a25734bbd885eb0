"""ZeRO memory arithmetic against the ZeRO paper; communication formulas against bytes really sent."""

from __future__ import annotations

import pytest

from llm_from_scratch.distributed import comm
from llm_from_scratch.distributed.memory import zero_memory


@pytest.mark.parametrize("stage,gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure1(stage, gb):
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 GPUs, mixed precision Adam (K = 12).
    assert zero_memory(7_500_000_000, 64, stage, "mixed").total / 1e9 == pytest.approx(gb, abs=0.05)


def test_zero_fp32_is_16_bytes_per_parameter():
    assert zero_memory(1000, 4, 0, "fp32").total == 16_000
    assert zero_memory(1000, 4, 3, "fp32").total == 4_000
    with pytest.raises(ValueError, match="stage"):
        zero_memory(1000, 4, 4)


def test_ring_formulas():
    assert comm.allreduce_bytes(100, 2) == 100 and comm.allreduce_bytes(100, 4) == 150
    assert comm.allgather_bytes(100, 4) == 75
    assert comm.reduce_scatter_bytes(100, 4, "nccl") == 75 and comm.reduce_scatter_bytes(100, 4, "gloo") == 150


def test_measured_bytes_match_formulas(run_job):
    r = run_job("bench", "--batch", "4", "--seq", "32", "--steps", "2")
    assert set(r["strategies"]) == {"ddp_scratch", "ddp_torch", "fsdp", "tp_scratch", "tp_dtensor"}
    for name, s in r["strategies"].items():
        assert 0.9 < s["ratio"] < 1.1, name
