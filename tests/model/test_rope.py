"""RoPE: rotation in the complex plane, relative positions, norm preservation, context-extension schedules."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_from_scratch.model.rope import apply_rope, rope_cache, rope_inv_freq, rotate_half, yarn_inv_freq

D = 16


def test_rotate_half_is_multiplication_by_i():
    x = torch.randn(3, D)
    z = torch.complex(x[:, : D // 2], x[:, D // 2 :])
    rotated = rotate_half(x)
    assert torch.allclose(torch.complex(rotated[:, : D // 2], rotated[:, D // 2 :]), 1j * z)


def test_apply_rope_equals_complex_multiplication():
    x = torch.randn(10, D, dtype=torch.float64)
    cos, sin = rope_cache(D, 10)
    angles = torch.outer(torch.arange(10, dtype=torch.float64), rope_inv_freq(D).double())
    z = torch.complex(x[:, : D // 2], x[:, D // 2 :]) * torch.polar(torch.ones_like(angles), angles)
    out = apply_rope(x, cos.double(), sin.double())
    assert torch.allclose(out, torch.cat((z.real, z.imag), dim=-1), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(i=st.integers(0, 200), j=st.integers(0, 200), shift=st.integers(0, 50), seed=st.integers(0, 2**16))
def test_scores_depend_only_on_relative_position(i, j, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(D, generator=g, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64)
    cos, sin = (t.double() for t in rope_cache(D, 260))

    def score(a, b):
        return apply_rope(q, cos[a], sin[a]) @ apply_rope(k, cos[b], sin[b])

    # the angle tables are fp32 (as in HF): exact in exact arithmetic, equal to ~1e-5 relative here
    assert math.isclose(score(i, j), score(i + shift, j + shift), abs_tol=1e-4 * float(q.norm() * k.norm()))


@settings(max_examples=30, deadline=None)
@given(pos=st.integers(0, 1000), seed=st.integers(0, 2**16))
def test_rotation_preserves_norm(pos, seed):
    x = torch.randn(4, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    cos, sin = (t.double() for t in rope_cache(D, pos + 1))
    assert torch.allclose(apply_rope(x, cos[pos], sin[pos]).norm(dim=-1), x.norm(dim=-1))


def test_position_zero_is_identity_and_frequencies_decay():
    cos, sin = rope_cache(D, 4)
    x = torch.randn(D)
    assert torch.equal(apply_rope(x, cos[0], sin[0]), x)
    inv = rope_inv_freq(D, 10000.0)
    assert (
        inv[0] == 1.0 and torch.all(inv[1:] < inv[:-1]) and math.isclose(inv[-1], 10000 ** (-(D - 2) / D), rel_tol=1e-6)
    )


def test_linear_scaling_is_position_interpolation():
    cos_pi, sin_pi = rope_cache(D, 64, scaling="linear", factor=4.0, original_context=16)
    cos, sin = rope_cache(D, 64)
    # position 4p under interpolation lands exactly where position p was during training
    assert torch.allclose(cos_pi[::4], cos[:16], atol=1e-6) and torch.allclose(sin_pi[::4], sin[:16], atol=1e-6)


def test_ntk_keeps_fast_and_stretches_slowest_dimension():
    base, ntk = rope_inv_freq(D), rope_inv_freq(D, 10000.0 * 4.0 ** (D / (D - 2)))
    assert ntk[0] == base[0]
    assert math.isclose(base[-1] / ntk[-1], 4.0, rel_tol=1e-5)


def test_yarn_interpolates_slow_and_keeps_fast_dimensions():
    inv, attention_factor = yarn_inv_freq(64, 10000.0, 8.0, original_context=256)
    base = rope_inv_freq(64)
    assert inv[0] == base[0]  # many turns over the context: untouched
    assert torch.all(inv / base <= 1.0) and torch.all((inv / base)[1:] <= (inv / base)[:-1])  # then a ramp
    assert torch.allclose(inv[-4:], base[-4:] / 8.0)  # less than one turn: interpolated
    assert math.isclose(attention_factor, 0.1 * math.log(8.0) + 1.0)
