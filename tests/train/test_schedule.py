"""Warmup + cosine schedule: the three values the chapter quotes, and Hugging Face's schedule as a reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from llm_from_scratch.train.schedule import lr_at, warmup_steps

PEAK, TOTAL, FRAC = 3e-3, 1000, 0.02  # 20 warmup steps


def test_values_at_warmup_end_midpoint_and_end():
    w = warmup_steps(TOTAL, FRAC)
    assert w == 20
    assert lr_at(0, PEAK, TOTAL, FRAC) == pytest.approx(PEAK / 20)  # the first step already moves
    assert lr_at(w - 1, PEAK, TOTAL, FRAC) == pytest.approx(PEAK)  # warmup ends at the peak
    assert lr_at(w, PEAK, TOTAL, FRAC) == pytest.approx(PEAK)  # decay starts from the peak
    mid = w + (TOTAL - 1 - w) / 2
    assert lr_at(mid, PEAK, TOTAL, FRAC) == pytest.approx(0.55 * PEAK)  # halfway: (peak + floor) / 2
    assert lr_at(TOTAL - 1, PEAK, TOTAL, FRAC) == pytest.approx(0.1 * PEAK)  # the last step sits on the floor
    assert lr_at(TOTAL + 50, PEAK, TOTAL, FRAC) == pytest.approx(0.1 * PEAK)


def test_monotone_up_then_down():
    lrs = [lr_at(s, PEAK, TOTAL, FRAC) for s in range(TOTAL)]
    w = warmup_steps(TOTAL, FRAC)
    assert all(a < b for a, b in itertools.pairwise(lrs[:w]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[w:]))


def test_decay_matches_transformers_cosine_with_min_lr():
    transformers = pytest.importorskip("transformers.optimization")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)
    w = warmup_steps(TOTAL, FRAC)
    # HF's progress is (s - w) / (N - w); ours ends exactly on the last step, so its N is our total - 1
    sched = transformers.get_cosine_with_min_lr_schedule_with_warmup(opt, w, TOTAL - 1, min_lr_rate=0.1)
    for s in range(w, TOTAL):
        assert math.isclose(sched.lr_lambdas[0](s) * PEAK, lr_at(s, PEAK, TOTAL, FRAC), rel_tol=1e-12), s


def test_bad_fraction_raises():
    with pytest.raises(ValueError, match="warmup_frac"):
        lr_at(0, PEAK, TOTAL, warmup_frac=1.5)
