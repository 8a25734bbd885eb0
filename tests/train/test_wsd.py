"""Warmup-stable-decay: warmup as the cosine schedule's, the peak held, a linear decay to the floor at the end."""

from __future__ import annotations

import itertools

import pytest

from llm_from_scratch.train.schedule import lr_at, warmup_steps

PEAK, TOTAL, FRAC = 3e-3, 1000, 0.02


def test_wsd_holds_the_peak_then_decays_linearly_to_the_floor():
    lrs = [lr_at(s, PEAK, TOTAL, FRAC, 0.1, "wsd", 0.2) for s in range(TOTAL)]
    w = warmup_steps(TOTAL, FRAC)
    assert lrs[:w] == [lr_at(s, PEAK, TOTAL, FRAC) for s in range(w)]  # the same warmup as the cosine schedule
    assert all(lr == PEAK for lr in lrs[w:800])  # stable: 80 % of the run minus the warmup
    assert lrs[800] < PEAK and lrs[-1] == pytest.approx(0.1 * PEAK)
    steps = [a - b for a, b in itertools.pairwise(lrs[800:])]
    assert max(steps) == pytest.approx(min(steps))  # linear
    assert lr_at(TOTAL + 10, PEAK, TOTAL, FRAC, 0.1, "wsd", 0.2) == pytest.approx(0.1 * PEAK)


def test_cosine_default_is_unchanged_and_bad_names_fail():
    for s in (0, 10, 500, 999):
        assert lr_at(s, PEAK, TOTAL, FRAC) == lr_at(s, PEAK, TOTAL, FRAC, 0.1, "cosine", 0.5)
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_at(5, PEAK, TOTAL, FRAC, 0.1, "linear")
    with pytest.raises(ValueError, match="decay_frac"):
        lr_at(500, PEAK, TOTAL, FRAC, 0.1, "wsd", 0.0)
