"""boxer.ops.gather internals: the integer fallback of the row arithmetic, the segment sums of the
value gradient on dense and sparse sampling, level layouts that change between calls."""

from __future__ import annotations

import pytest
import torch

from boxer.ops import gather, reference
from boxer.ops.geometry import sampling_locations


def _core_inputs(seed, *, B=2, Q=6, H=2, D=3, m=3, shapes=((6, 5), (3, 3), (1, 2)), dtype=torch.float64):
    """value, shapes, loc [B, Q, H, L, m*m, 2], attn; boxes partly off the map."""
    gen = torch.Generator().manual_seed(seed)
    L, S = len(shapes), sum(h * w for h, w in shapes)
    value = torch.randn(B, S, H, D, generator=gen, dtype=dtype)
    boxes = torch.cat(
        (torch.rand(B, Q, H, L, 2, generator=gen) * 1.4 - 0.2, torch.rand(B, Q, H, L, 2, generator=gen)), -1
    )
    loc = sampling_locations(boxes.to(dtype), m).flatten(4, 5)
    attn = torch.rand(B, Q, H, L, m * m, generator=gen, dtype=dtype)
    return value, list(shapes), loc, attn


def _all(value, shapes, loc, attn, sum_points):
    out = gather.gather_forward(value, shapes, loc, attn, sum_points)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    return (out, *gather.gather_backward(grad, value, shapes, loc, attn, sum_points)), grad


@pytest.mark.parametrize("sum_points", [True, False])
def test_integer_row_arithmetic_gives_the_same_rows(monkeypatch, sum_points):
    """Row numbers are built in floating point while the table is small enough for them to be exact
    and in integers above; both give identical results."""
    inputs = _core_inputs(0, dtype=torch.float32)
    fast, _ = _all(*inputs, sum_points)
    monkeypatch.setattr(gather, "_EXACT_INT", {torch.float32: 0, torch.float64: 0})
    slow, _ = _all(*inputs, sum_points)
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)


@pytest.mark.parametrize("sum_points", [True, False])
@pytest.mark.parametrize("queries", [1, 40])  # sparse: few points per row; dense: many share a top-left row
def test_value_gradient_matches_grid_sample(sum_points, queries):
    value, shapes, loc, attn = _core_inputs(1, Q=queries)
    (out, gv, gl, ga), grad = _all(value, shapes, loc, attn, sum_points)
    ref = reference.core_reference(value, shapes, loc, attn, sum_points=sum_points)
    rv, rl, ra = reference.core_reference_backward(grad, value, shapes, loc, attn, sum_points=sum_points)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    for g, r in ((gv, rv), (gl, rl), (ga, ra)):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


def test_level_layouts_that_change_between_calls():
    """Multi-scale training changes the map sizes every step: nothing computed for one layout leaks
    into the next."""
    for shapes in (((6, 5), (3, 3)), ((4, 7), (2, 4)), ((6, 5), (3, 3))):
        value, shapes, loc, attn = _core_inputs(2, shapes=shapes)
        (out, gv, _, _), grad = _all(value, shapes, loc, attn, True)
        rv, _, _ = reference.core_reference_backward(grad, value, shapes, loc, attn, sum_points=True)
        torch.testing.assert_close(
            out, reference.core_reference(value, shapes, loc, attn), rtol=1e-10, atol=1e-12
        )
        torch.testing.assert_close(gv, rv, rtol=1e-9, atol=1e-11)
