"""Architecture diagrams for the model chapters, drawn with matplotlib patches, arrows and text.

Book-only (nothing in the pipeline imports this). Each function returns a `matplotlib.figure.Figure` whose axes
are measured in inches (one data unit = one inch of the printed figure), so font sizes in points and box sizes in
inches can be chosen together: every figure is at most 6.5 in wide and no text is smaller than 8 pt. HTML and PDF
get the same PNG.
"""

from __future__ import annotations

import math
from fractions import Fraction

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

FONT = 9  # box text, points
SMALL = 8  # shape labels and notes, points (the smallest size in any diagram)
SHAPE = "#555555"

COLOURS = {
    "norm": "#fde9c9",
    "attn": "#d6e6f5",
    "mlp": "#dcefd8",
    "embed": "#ece2f2",
    "io": "#f2f2f2",
    "mask": "#f8d7d3",
}


def _canvas(width: float, height: float) -> tuple[Figure, plt.Axes]:
    """A figure of `width` x `height` inches whose single axes spans it, in inch coordinates."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _box(ax, x, y, w, h, text, colour="io", size=FONT, dashed=False):
    """A rounded box centred at (x, y); returns its (left, bottom, right, top)."""
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.06",
            facecolor=COLOURS.get(colour, colour),
            edgecolor="#333333",
            linewidth=0.9,
            linestyle="--" if dashed else "-",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size, linespacing=1.25)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _arrow(ax, start, end, label=None, side="right", colour="#333333", offset=0.08):
    """An arrow from `start` to `end`, with an optional tensor-shape label beside its middle."""
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=9, linewidth=1.0, color=colour, shrinkA=0, shrinkB=0
        )
    )
    if label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        dx = offset if side == "right" else -offset
        ax.text(mx + dx, my, label, ha="left" if side == "right" else "right", va="center", fontsize=SMALL, color=SHAPE)


def _line(ax, points, colour="#333333"):
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, color=colour, linewidth=1.0, solid_capstyle="butt")


def _plus(ax, x, y, r=0.13):
    """The residual addition: a circled plus."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor="#333333", linewidth=1.0))
    ax.plot([x - r * 0.6, x + r * 0.6], [y, y], color="#333333", linewidth=1.0)
    ax.plot([x, x], [y - r * 0.6, y + r * 0.6], color="#333333", linewidth=1.0)


def transformer_block() -> Figure:
    """The Llama-style decoder: embedding, L pre-norm blocks (RMSNorm, GQA attention with RoPE, residual add,
    RMSNorm, SwiGLU MLP, residual add), final RMSNorm and the LM head, with the tensor shapes on the arrows.
    Data flows from bottom to top."""
    fig, ax = _canvas(6.0, 7.9)
    sx, bx = 1.9, 4.3  # x of the residual stream, x of the sub-layer branch
    bw, bh = 2.6, 0.46  # branch box size
    d_shape = "$(B, T, d)$"

    # Input: token ids and the embedding
    _box(ax, sx, 0.35, 1.7, 0.4, "token ids", "io")
    _arrow(ax, (sx, 0.55), (sx, 0.95), "$(B, T)$")
    _box(ax, sx, 1.2, 2.2, 0.5, "token embedding $E$\n$(V \\times d)$", "embed")

    # The block, repeated L times
    top_of_block = 6.15
    ax.add_patch(
        FancyBboxPatch(
            (0.35, 1.75),
            5.45,
            top_of_block - 1.75,
            boxstyle="round,pad=0,rounding_size=0.1",
            facecolor="none",
            edgecolor="#888888",
            linewidth=1.0,
            linestyle="--",
        )
    )
    ax.text(0.5, top_of_block - 0.18, "$\\times L$ blocks", ha="left", va="center", fontsize=FONT)
    _arrow(ax, (sx, 1.45), (sx, 1.75), None)
    ax.text(sx + 0.08, 1.62, d_shape, ha="left", va="center", fontsize=SMALL, color=SHAPE)

    def sublayer(y0, name, colour, y_norm, y_op, y_add, shape_out):
        """Branch off the stream at y0, RMSNorm, the operation, and add back at y_add."""
        _line(ax, [(sx, y0), (bx, y0)])
        _arrow(ax, (bx, y0), (bx, y_norm - bh / 2))
        _box(ax, bx, y_norm, bw, bh * 0.8, "RMSNorm", "norm")
        _arrow(ax, (bx, y_norm + bh * 0.4), (bx, y_op - bh / 2), d_shape)
        _box(ax, bx, y_op, bw, bh * 1.25, name, colour)
        _line(ax, [(bx, y_op + bh * 0.625), (bx, y_add)])
        _arrow(ax, (bx, y_add), (sx + 0.13, y_add))
        ax.text((sx + bx) / 2 + 0.2, y_add + 0.1, shape_out, ha="center", va="bottom", fontsize=SMALL, color=SHAPE)
        _line(ax, [(sx, y0), (sx, y_add - 0.13)])
        _plus(ax, sx, y_add)

    sublayer(1.95, "causal self-attention\nGQA heads, RoPE on $q, k$", "attn", 2.3, 3.1, 3.75, d_shape)
    ax.text(sx - 0.1, 2.8, "residual\nstream", ha="right", va="center", fontsize=SMALL, color=SHAPE)
    _line(ax, [(sx, 3.88), (sx, 4.05)])
    sublayer(4.05, "SwiGLU MLP\n$W_{down}(\\mathrm{silu}(W_{gate}x) \\odot W_{up}x)$", "mlp", 4.4, 5.2, 5.85, d_shape)

    # Output: final norm, head, logits
    _arrow(ax, (sx, 5.98), (sx, 6.5), d_shape)
    _box(ax, sx, 6.69, 2.0, 0.38, "final RMSNorm", "norm")
    _arrow(ax, (sx, 6.88), (sx, 7.15), None)
    _box(ax, sx, 7.35, 2.6, 0.4, "LM head (tied to $E$)", "embed")
    _arrow(ax, (sx, 7.55), (sx, 7.85), None)
    ax.text(sx + 0.08, 7.7, "logits $(B, T, V)$", ha="left", va="center", fontsize=SMALL, color=SHAPE)
    ax.text(
        5.8,
        0.35,
        "$B$ batch, $T$ positions, $d$ width,\n$V$ vocabulary, $L$ layers",
        ha="right",
        va="center",
        fontsize=SMALL,
        color=SHAPE,
    )
    return fig


def attention_dataflow() -> Figure:
    """One attention layer step by step, with the shape after each step: the fused QKV projection, the split into
    heads (GQA: fewer key/value heads), RoPE on queries and keys, scores, causal mask, softmax, the weighted sum of
    values, the concatenation of the heads and the output projection. Data flows from top to bottom."""
    fig, ax = _canvas(6.5, 7.6)
    lq, lk, lv = 1.25, 3.25, 5.25  # x of the query, key and value lanes
    w = 1.75
    y = 7.25  # current row, moving down

    _box(ax, lk, y, 2.0, 0.38, "input $x$", "io")
    ax.text(lk + 1.1, y, "$(B, T, d)$", ha="left", va="center", fontsize=SMALL, color=SHAPE)
    y -= 0.75
    for lane in (lq, lk, lv):
        _arrow(ax, (lk, 7.06), (lane, y + 0.2))
    for lane, name in [(lq, "$W_Q$"), (lk, "$W_K$"), (lv, "$W_V$")]:
        _box(ax, lane, y, w, 0.4, name, "attn")
    y_split = y - 0.85
    for lane, shape in [(lq, "$(B, T, H d_h)$"), (lk, "$(B, T, H_{kv} d_h)$"), (lv, "$(B, T, H_{kv} d_h)$")]:
        _arrow(ax, (lane, y - 0.2), (lane, y_split + 0.2), shape, offset=0.06)
    for lane in (lq, lk, lv):
        _box(ax, lane, y_split, w, 0.4, "split heads", "io")
    y_rope = y_split - 0.85
    for lane, shape in [(lq, "$(B, H, T, d_h)$"), (lk, "$(B, H_{kv}, T, d_h)$")]:
        _arrow(ax, (lane, y_split - 0.2), (lane, y_rope + 0.2), shape, offset=0.06)
    for lane in (lq, lk):
        _box(ax, lane, y_rope, w, 0.4, "RoPE", "norm")

    # scores from q and k
    y_s = y_rope - 0.8
    xs = (lq + lk) / 2
    _arrow(ax, (lq, y_rope - 0.2), (xs - 0.5, y_s + 0.22))
    _arrow(ax, (lk, y_rope - 0.2), (xs + 0.5, y_s + 0.22))
    _box(ax, xs, y_s, 2.6, 0.44, "scores $Q K^\\top / \\sqrt{d_h}$", "attn")
    y_m = y_s - 0.7
    _arrow(ax, (xs, y_s - 0.22), (xs, y_m + 0.2), "$(B, H, T, T)$", offset=0.06)
    _box(ax, xs, y_m, 2.6, 0.4, "causal mask: $-\\infty$ where $j > i$", "mask")
    y_sm = y_m - 0.7
    _arrow(ax, (xs, y_m - 0.2), (xs, y_sm + 0.2))
    _box(ax, xs, y_sm, 2.6, 0.4, "softmax over keys $j$", "norm")
    ax.text(xs - 0.15, y_sm - 0.42, "weights $A$", ha="right", va="center", fontsize=SMALL, color=SHAPE)

    # weighted sum with v
    y_av = y_sm - 0.75
    xav = (xs + lv) / 2 + 0.3
    _arrow(ax, (xs, y_sm - 0.2), (xav - 0.6, y_av + 0.22))
    _line(ax, [(lv, y_split - 0.2), (lv, y_av + 0.5)])
    _arrow(ax, (lv, y_av + 0.5), (xav + 0.6, y_av + 0.22))
    ax.text(
        lv + 0.06,
        (y_split + y_av) / 2,
        "$(B, H_{kv}, T, d_h)$\neach shared by\n$H / H_{kv}$ query heads",
        ha="left",
        va="center",
        fontsize=SMALL,
        color=SHAPE,
    )
    _box(ax, xav, y_av, 2.3, 0.44, "weighted sum $A\\,V$", "attn")
    y_cat = y_av - 0.75
    _arrow(ax, (xav, y_av - 0.22), (xav, y_cat + 0.2), "$(B, H, T, d_h)$", offset=0.06)
    _box(ax, xav, y_cat, 2.3, 0.4, "concatenate heads", "io")
    y_o = y_cat - 0.75
    _arrow(ax, (xav, y_cat - 0.2), (xav, y_o + 0.2), "$(B, T, H d_h)$", offset=0.06)
    _box(ax, xav, y_o, 2.3, 0.4, "output projection $W_O$", "attn")
    ax.text(xav - 1.25, y_o, "out $(B, T, d)$", ha="right", va="center", fontsize=SMALL, color=SHAPE)
    return fig


def gqa_heads(n_head: int = 8, n_kv_head: int = 2) -> Figure:
    """Query heads and the key/value heads they read: multi-head (one K/V head per query head), grouped-query
    (`n_head / n_kv_head` query heads share each K/V head) and multi-query (one K/V head for all)."""
    if n_head % n_kv_head:
        raise ValueError(f"gqa_heads: n_head={n_head} is not a multiple of n_kv_head={n_kv_head}")
    rows = [("multi-head", n_head), ("grouped-query", n_kv_head), ("multi-query", 1)]
    fig, ax = _canvas(6.5, 1.3 * len(rows) + 0.2)
    palette = plt.get_cmap("tab10").colors
    left, right = 1.9, 6.3
    step = (right - left) / n_head
    size = min(0.36, step * 0.7)
    for r, (name, kv) in enumerate(rows):
        top = 1.3 * (len(rows) - r) - 0.1
        yq, ykv = top - 0.3, top - 0.95
        group = n_head // kv
        share = "1" if kv == n_head else f"{Fraction(kv, n_head)}"
        ax.text(
            0.1,
            top - 0.45,
            f"{name}\n$H_{{kv}} = {kv}$\nKV cache $\\times$ {share}",
            ha="left",
            va="center",
            fontsize=FONT,
            linespacing=1.3,
        )
        for h in range(n_head):
            x = left + step * (h + 0.5)
            g = h // group
            kx = left + step * (g * group + group / 2)
            ax.plot([x, kx], [yq - size / 2, ykv + size / 2], color=palette[g % 10], linewidth=1.0)
            ax.add_patch(
                FancyBboxPatch(
                    (x - size / 2, yq - size / 2),
                    size,
                    size,
                    boxstyle="round,pad=0,rounding_size=0.04",
                    facecolor="white",
                    edgecolor=palette[g % 10],
                    linewidth=1.2,
                )
            )
            ax.text(x, yq, f"q{h}", ha="center", va="center", fontsize=SMALL)
        for g in range(kv):
            kx = left + step * (g * group + group / 2)
            width = max(size, step * group - 0.12) if kv > 1 else size * 1.6
            ax.add_patch(
                FancyBboxPatch(
                    (kx - width / 2, ykv - size / 2),
                    width,
                    size,
                    boxstyle="round,pad=0,rounding_size=0.04",
                    facecolor=palette[g % 10],
                    alpha=0.35,
                    edgecolor=palette[g % 10],
                    linewidth=1.2,
                )
            )
            ax.text(
                kx, ykv, f"k{g}, v{g}" if size * 1.6 <= width else f"kv{g}", ha="center", va="center", fontsize=SMALL
            )
    ax.text(left - 0.08, 1.3 * len(rows) - 0.4, "query\nheads", ha="right", va="center", fontsize=SMALL, color=SHAPE)
    ax.text(
        left - 0.08, 1.3 * len(rows) - 1.05, "key/value\nheads", ha="right", va="center", fontsize=SMALL, color=SHAPE
    )
    return fig


def rope_rotation(head_dim: int = 16, theta: float = 10000.0) -> Figure:
    """RoPE on one pair of dimensions and across frequencies.

    Left: a query pair rotated by `m * omega` for positions m = 0..5. Middle: a query at position m and a key at
    position n = m - 2 for two values of m: the angle between them, hence their dot product, is the same.
    Right: the angle per position of several dimension pairs i, `omega_i = theta^(-2i/d)`, fast to slow."""
    fig, axes = plt.subplots(1, 3, figsize=(6.5, 2.6))
    omega = 0.5  # radians per position for the pair drawn in the first two panels

    def circle(ax, title):
        ax.add_patch(Circle((0, 0), 1, facecolor="none", edgecolor="#bbbbbb", linewidth=0.8))
        ax.plot([-1.15, 1.15], [0, 0], color="#dddddd", linewidth=0.6)
        ax.plot([0, 0], [-1.15, 1.15], color="#dddddd", linewidth=0.6)
        ax.set_xlim(-1.35, 1.35)
        ax.set_ylim(-1.35, 1.35)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(title, fontsize=FONT)

    def vector(ax, angle, colour, label=None, r=1.0, label_r=1.17):
        ax.annotate(
            "",
            xy=(r * math.cos(angle), r * math.sin(angle)),
            xytext=(0, 0),
            arrowprops=dict(arrowstyle="-|>", color=colour, linewidth=1.1, mutation_scale=8),
        )
        if label:
            ax.text(
                label_r * math.cos(angle),
                label_r * math.sin(angle),
                label,
                ha="center",
                va="center",
                fontsize=SMALL,
                color=colour,
            )

    ax = axes[0]
    circle(ax, "query at positions $m$")
    for m in range(6):
        vector(ax, m * omega, plt.get_cmap("viridis")(m / 6), f"{m}", label_r=1.2)
    ax.text(0, -1.32, "pair rotated by $m\\,\\omega$", ha="center", va="center", fontsize=SMALL)

    ax = axes[1]
    circle(ax, "same offset $m - n = 1$")
    q0, step = 0.6, 0.9  # the query's own angle before rotation; a faster pair than on the left
    for m, colour in [(1, "tab:blue"), (4, "tab:orange")]:
        n = m - 1
        vector(ax, q0 + m * step, colour, f"$q_{m}$", label_r=1.2)
        vector(ax, n * step, colour, f"$k_{n}$", r=0.75, label_r=0.95)
    ax.text(0, -1.32, "equal angles: equal $q \\cdot k$", ha="center", va="center", fontsize=SMALL)

    ax = axes[2]
    positions = [m / 4 for m in range(4 * 40 + 1)]
    for i, colour in zip([0, 1, 2, 3], ["tab:red", "tab:orange", "tab:green", "tab:blue"], strict=True):
        w = theta ** (-2 * i / head_dim)
        ax.plot(positions, [math.cos(m * w) for m in positions], color=colour, linewidth=1.0, label=f"$i={i}$")
    ax.set_xlabel("position $m$", fontsize=SMALL)
    ax.set_ylabel("$\\cos(m\\,\\omega_i)$", fontsize=SMALL)
    ax.set_ylim(-1.1, 1.6)
    ax.set_yticks([-1, 0, 1])
    ax.tick_params(labelsize=SMALL)
    ax.set_title(f"frequencies $\\omega_i$, $d = {head_dim}$", fontsize=FONT)
    ax.legend(
        fontsize=SMALL,
        loc="upper center",
        ncol=4,
        handlelength=0.8,
        handletextpad=0.3,
        columnspacing=0.6,
        borderpad=0.3,
        frameon=False,
    )
    fig.tight_layout(w_pad=0.8)
    return fig


def label_points(ax, xy, labels, colours, fontsize: float = SMALL, iterations: int = 300) -> None:
    """Write each label at its point of `xy` (n x 2, data coordinates), pushing labels apart until they no
    longer overlap; a label moved far from its point gets a dot there and a thin leader line. Call after the axes'
    limits and the figure size are final (the layout is computed in inches)."""
    import numpy as np

    xy = np.asarray(xy, dtype=float)
    fig = ax.figure
    to_inch = ax.transData + fig.dpi_scale_trans.inverted()
    anchor = to_inch.transform(xy)
    pos = anchor.copy()
    pt = 1 / 72
    size = np.array([[max(len(t), 1) * 0.6 * fontsize * pt + 0.04, fontsize * pt * 1.3] for t in labels])
    rng = np.random.default_rng(0)
    pos += rng.normal(scale=0.005, size=pos.shape)
    n = len(pos)
    for _ in range(iterations):
        clashes = 0
        for i in range(n):
            for j in range(i + 1, n):
                delta = pos[i] - pos[j]
                overlap = (size[i] + size[j]) / 2 - np.abs(delta)
                if overlap[0] <= 0 or overlap[1] <= 0:
                    continue
                clashes += 1
                a = 0 if overlap[0] / size[i, 0] < overlap[1] / size[i, 1] else 1
                step = (overlap[a] / 2 + 0.005) * (1.0 if delta[a] >= 0 else -1.0)
                pos[i, a] += step
                pos[j, a] -= step
        if not clashes:
            break
        pos += 0.01 * (anchor - pos)  # a weak pull back towards the points
    back = to_inch.inverted()
    for (x, y), (lx, ly), text, colour in zip(xy, back.transform(pos), labels, colours, strict=True):
        moved = np.hypot(*(to_inch.transform((lx, ly)) - to_inch.transform((x, y))))
        if moved > 1.2 * fontsize * pt:  # far from its point: a dot there and a thin leader line
            ax.plot([x], [y], "o", ms=2, color=colour, zorder=1)
            ax.plot([x, lx], [y, ly], color=colour, linewidth=0.5, alpha=0.6, zorder=1)
        ax.text(lx, ly, text, color=colour, fontsize=fontsize, ha="center", va="center", zorder=3)


__all__ = ["attention_dataflow", "gqa_heads", "label_points", "rope_rotation", "transformer_block"]
