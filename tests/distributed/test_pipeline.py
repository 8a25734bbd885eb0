"""GPipe: the timetable's idle fraction is (p - 1) / (m + p - 1); the 2-stage run gives the full-batch gradients."""

from __future__ import annotations

import pytest

from llm_from_scratch.distributed.pipeline_parallel import bubble_fraction, gpipe_schedule, measured_bubble


@pytest.mark.parametrize("stages,micro", [(2, 1), (2, 4), (4, 8), (8, 3)])
def test_schedule_bubble_matches_formula(stages, micro):
    tasks = gpipe_schedule(stages, micro)
    assert len(tasks) == 2 * stages * micro
    assert measured_bubble(tasks) == pytest.approx(bubble_fraction(stages, micro))


def test_schedule_respects_dependencies():
    tasks = {(s, kind, m): (start, start + dur) for s, start, dur, kind, m in gpipe_schedule(3, 4)}
    for (s, kind, m), (start, _) in tasks.items():
        if kind == "F" and s > 0:
            assert start >= tasks[(s - 1, "F", m)][1]
        if kind == "B" and s < 2:
            assert start >= tasks[(s + 1, "B", m)][1]


def test_gpipe_two_stages_equal_full_batch(run_job):
    r = run_job("pipeline", "--batch", "8", "--seq", "32", "--micro", "4")
    assert r["loss_diff"] < 1e-5
    assert r["grad_diff"] < 1e-6
