"""boxer.ops.box_attention: parity with a naive loop, gradcheck, edge cases, validation, FLOPs."""

from __future__ import annotations

import pytest
import torch
from box_attention_naive import naive_box_attention
from torch.utils.flop_counter import FlopCounterMode

from boxer.ops import box_attention

CPU_BACKENDS = ["reference", "gather"]
SHAPES = [(5, 7), (3, 2), (1, 1)]  # includes a 1x1 level


def make_inputs(
    seed=0, *, B=2, Q=3, H=2, D=3, m=2, shapes=SHAPES, dtype=torch.float64, spread=1.4, angles=False
):
    """Random inputs; boxes are partly or fully outside some of the time (centres in [-0.2, 1.2])."""
    gen = torch.Generator().manual_seed(seed)
    L, S = len(shapes), sum(h * w for h, w in shapes)
    value = torch.randn(B, S, H, D, generator=gen, dtype=dtype)
    centre = torch.rand(B, Q, H, L, 2, generator=gen) * spread - (spread - 1) / 2
    size = torch.rand(B, Q, H, L, 2, generator=gen) * 0.8
    boxes = torch.cat((centre, size), -1).to(dtype)
    weights = torch.rand(B, Q, H, L, m, m, generator=gen).to(dtype)
    ang = (torch.rand(B, Q, H, L, generator=gen) * 6.3 - 3.15).to(dtype) if angles else None
    return value, torch.tensor(shapes), boxes, weights, ang


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("with_angles", [False, True])
def test_matches_naive_loop_float64(backend, m, with_angles):
    value, ss, boxes, weights, angles = make_inputs(m, m=m, angles=with_angles)
    out = box_attention(value, ss, boxes, weights, angles=angles, backend=backend)
    expected = naive_box_attention(value, SHAPES, boxes, weights, angles)
    assert out.dtype == torch.float64 and out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_grid_14_matches_naive_loop(backend):
    value, ss, boxes, weights, _ = make_inputs(7, B=1, Q=2, H=1, m=14)
    out = box_attention(value, ss, boxes, weights, backend=backend)
    torch.testing.assert_close(
        out, naive_box_attention(value, SHAPES, boxes, weights), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradcheck_value_boxes_weights_angles(backend, seed):
    value, ss, boxes, weights, angles = make_inputs(seed, B=2, Q=2, H=2, D=2, angles=True)
    inputs = [t.requires_grad_() for t in (value, boxes, weights, angles)]

    def fn(v, b, w, a):
        return box_attention(v, ss, b, w, angles=a, backend=backend)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradcheck_m3_without_angles(backend):
    value, ss, boxes, weights, _ = make_inputs(5, B=1, Q=2, H=2, D=2, m=3)
    inputs = [t.requires_grad_() for t in (value, boxes, weights)]
    assert torch.autograd.gradcheck(lambda v, b, w: box_attention(v, ss, b, w, backend=backend), inputs)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backends_agree_on_gradients(backend):
    value, ss, boxes, weights, angles = make_inputs(3, Q=4, angles=True)
    inputs = [t.requires_grad_() for t in (value, boxes, weights, angles)]
    out = box_attention(*inputs[:1], ss, *inputs[1:3], angles=inputs[3], backend=backend)
    grads = torch.autograd.grad(out.square().sum(), inputs)
    ref = box_attention(*inputs[:1], ss, *inputs[1:3], angles=inputs[3], backend="reference")
    ref_grads = torch.autograd.grad(ref.square().sum(), inputs)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_boxes_fully_outside_give_zero_and_zero_value_grad(backend):
    value, ss, boxes, weights, _ = make_inputs(1)
    boxes[..., 0] = 2.5  # every grid point is far right of every map
    boxes[..., 2] = 0.3
    value.requires_grad_()
    out = box_attention(value, ss, boxes, weights, backend=backend)
    assert torch.count_nonzero(out) == 0
    (grad,) = torch.autograd.grad(out.sum(), value)
    assert torch.count_nonzero(grad) == 0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_zero_size_boxes_sample_the_centre(backend):
    value, ss, boxes, weights, _ = make_inputs(2, m=3, spread=1.0)
    boxes[..., 2:] = 0.0
    out = box_attention(value, ss, boxes, weights, backend=backend)
    centre_only = torch.zeros_like(weights)
    centre_only[..., 1, 1] = weights.sum(dim=(-1, -2))  # all 9 points coincide with the middle one
    torch.testing.assert_close(
        out, naive_box_attention(value, SHAPES, boxes, centre_only), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_partly_outside_matches_naive(backend):
    value, ss, boxes, weights, _ = make_inputs(4, m=2, spread=1.0)
    boxes[..., :2] = torch.tensor([0.0, 1.0], dtype=boxes.dtype)  # centred on a corner of the map
    boxes[..., 2:] = 0.5
    out = box_attention(value, ss, boxes, weights, backend=backend)
    torch.testing.assert_close(
        out, naive_box_attention(value, SHAPES, boxes, weights), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bf16_inputs_accumulate_in_float32(backend):
    value, ss, boxes, weights, angles = make_inputs(6, Q=4, dtype=torch.float32, angles=True)
    low = [t.to(torch.bfloat16).requires_grad_() for t in (value, boxes, weights, angles)]
    out = box_attention(low[0], ss, low[1], low[2], angles=low[3], backend=backend)
    assert out.dtype == torch.bfloat16
    expected = naive_box_attention(
        *[low[0].detach()], SHAPES, low[1].detach(), low[2].detach(), low[3].detach()
    )
    torch.testing.assert_close(out.double(), expected, rtol=2e-2, atol=2e-2)
    grads = torch.autograd.grad(out.float().sum(), low)
    assert all(g.dtype == torch.bfloat16 and torch.isfinite(g.float()).all() for g in grads)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_no_queries(backend):
    value, ss, boxes, weights, _ = make_inputs(0, Q=0)
    value.requires_grad_()
    out = box_attention(value, ss, boxes, weights, backend=backend)
    assert out.shape == (2, 0, value.shape[2] * value.shape[3])
    (grad,) = torch.autograd.grad(out.sum(), value)
    assert torch.count_nonzero(grad) == 0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_of_one_matches_naive(backend):
    value, ss, boxes, weights, angles = make_inputs(8, B=1, angles=True)
    out = box_attention(value, ss, boxes, weights, angles=angles, backend=backend)
    expected = naive_box_attention(value, SHAPES, boxes, weights, angles)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


def test_flop_counter_sees_the_op():
    value, ss, boxes, weights, _ = make_inputs(0, B=2, Q=3, H=2, D=3, m=2)
    B, Q, H, L, m = 2, 3, 2, len(SHAPES), 2
    forward = 10 * 3 * B * Q * H * L * m * m
    value.requires_grad_()
    with FlopCounterMode(display=False) as counter:
        out = box_attention(value, ss, boxes, weights)
    assert counter.get_total_flops() == forward
    with FlopCounterMode(display=False) as counter:
        out.sum().backward()
    assert counter.get_total_flops() == 2 * forward


def _malformed():
    value, ss, boxes, weights, angles = make_inputs(0, angles=True)
    ok = dict(value=value, spatial_shapes=ss, boxes=boxes, weights=weights, angles=angles)
    cases = {
        "value": dict(value=value[0]),
        "value ": dict(value=value[:, :-1]),  # S != sum H_l * W_l
        "spatial_shapes": dict(spatial_shapes=ss.float()),
        "spatial_shapes ": dict(spatial_shapes=ss[:, :1]),
        "spatial_shapes  ": dict(spatial_shapes=ss.flatten()),
        "boxes": dict(boxes=boxes[..., :3]),
        "boxes ": dict(boxes=boxes[:, :, :1]),
        "weights": dict(weights=weights[..., :1]),  # not square
        "weights ": dict(weights=weights[:, :1]),  # Q mismatch
        "weights  ": dict(weights=weights.float()),  # dtype mismatch
        "angles": dict(angles=angles[..., :1]),
        "angles ": dict(angles=angles.float()),
        "boxes  ": dict(boxes=boxes.long()),
    }
    return [(name.strip(), {**ok, **change}) for name, change in cases.items()]


@pytest.mark.parametrize("argument,kwargs", _malformed())
def test_malformed_calls_name_the_argument(argument, kwargs):
    args = [kwargs.pop(k) for k in ("value", "spatial_shapes", "boxes", "weights")]
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        box_attention(*args, **kwargs)
