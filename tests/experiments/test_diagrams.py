"""The architecture diagrams draw: each returns a Figure with text in it, no wider than the printed page."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from llm_from_scratch.experiments import diagrams


@pytest.mark.parametrize("name", ["transformer_block", "attention_dataflow", "gqa_heads", "rope_rotation"])
def test_diagram_is_a_figure_with_text(name):
    fig = getattr(diagrams, name)()
    try:
        assert isinstance(fig, Figure)
        texts = [t for ax in fig.axes for t in ax.texts] + [ax.title for ax in fig.axes if ax.get_title()]
        assert texts, f"{name} has no text"
        assert all(t.get_fontsize() >= 8 for t in texts), f"{name} has text under 8 pt"
        assert fig.get_size_inches()[0] <= 6.5
    finally:
        plt.close(fig)


def test_gqa_heads_rejects_uneven_groups():
    with pytest.raises(ValueError):
        diagrams.gqa_heads(n_head=8, n_kv_head=3)
