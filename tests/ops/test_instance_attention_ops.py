"""boxer.ops.instance_attention: parity with a naive loop, gradcheck, shapes and validation."""

from __future__ import annotations

import pytest
import torch
from box_attention_naive import naive_instance_attention

from boxer.ops import instance_attention

CPU_BACKENDS = ["reference", "gather"]
SHAPES = [(4, 6), (2, 3), (1, 1)]


def make_inputs(seed=0, *, B=2, Q=2, H=2, D=3, dtype=torch.float64, angles=False):
    gen = torch.Generator().manual_seed(seed)
    L, S = len(SHAPES), sum(h * w for h, w in SHAPES)
    value = torch.randn(B, S, H, D, generator=gen, dtype=dtype)
    boxes = torch.cat(
        (torch.rand(B, Q, H, L, 2, generator=gen) * 1.2 - 0.1, torch.rand(B, Q, H, L, 2, generator=gen)), -1
    )
    logits = torch.randn(B, Q, H, L, 2, 2, generator=gen)
    ang = torch.rand(B, Q, H, L, generator=gen) * 6 - 3 if angles else None
    return value, torch.tensor(SHAPES), boxes.to(dtype), logits.to(dtype), (ang.to(dtype) if angles else None)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("grid_size", [2, 4, 14])
def test_matches_naive_loop_float64(backend, grid_size):
    value, ss, boxes, logits, angles = make_inputs(grid_size, Q=1 if grid_size == 14 else 2, angles=True)
    out, feats = instance_attention(
        value, ss, boxes, logits, angles=angles, grid_size=grid_size, backend=backend
    )
    exp_out, exp_feats = naive_instance_attention(value, SHAPES, boxes, logits, angles, g=grid_size)
    assert (
        feats.shape
        == exp_feats.shape
        == (2, boxes.shape[1], grid_size, grid_size, value.shape[2] * value.shape[3])
    )
    torch.testing.assert_close(out, exp_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(feats, exp_feats, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_value_boxes_logits_angles(backend, seed):
    value, ss, boxes, logits, angles = make_inputs(seed, B=1, Q=2, H=2, D=2, angles=True)
    inputs = [t.requires_grad_() for t in (value, boxes, logits, angles)]

    def fn(v, b, lg, a):
        return instance_attention(v, ss, b, lg, angles=a, grid_size=4, backend=backend)

    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)


def test_single_tiny_level_gradients_match_reference():
    # more sampled corners per bag than rows in the value table (1x1 map, 14x14 grid)
    gen = torch.Generator().manual_seed(0)
    value = torch.randn(1, 1, 1, 2, generator=gen, dtype=torch.float64)
    boxes = torch.rand(1, 2, 1, 1, 4, generator=gen, dtype=torch.float64)
    logits = torch.randn(1, 2, 1, 1, 2, 2, generator=gen, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (value, boxes, logits)]
    grads = {}
    for backend in CPU_BACKENDS:
        out, feats = instance_attention(
            inputs[0], torch.tensor([[1, 1]]), inputs[1], inputs[2], backend=backend
        )
        grads[backend] = torch.autograd.grad(out.sum() + feats.square().sum(), inputs)
    for g, r in zip(grads["gather"], grads["reference"]):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


def test_without_mask_features_returns_none_and_same_output():
    value, ss, boxes, logits, _ = make_inputs(3)
    out, feats = instance_attention(value, ss, boxes, logits, grid_size=4)
    out2, none = instance_attention(value, ss, boxes, logits, grid_size=4, return_mask_features=False)
    assert none is None and feats is not None
    torch.testing.assert_close(out, out2)


def test_bf16_keeps_dtype():
    value, ss, boxes, logits, _ = make_inputs(4, dtype=torch.bfloat16)
    out, feats = instance_attention(value, ss, boxes, logits)
    assert out.dtype == feats.dtype == torch.bfloat16 and feats.shape[2:4] == (14, 14)


@pytest.mark.parametrize(
    "change,argument",
    [
        (lambda a: {**a, "logits": a["logits"].repeat(1, 1, 1, 1, 2, 2)}, "logits"),
        (lambda a: {**a, "grid_size": 7}, "grid_size"),
        (lambda a: {**a, "spatial_shapes": a["spatial_shapes"].int()}, "spatial_shapes"),
        (lambda a: {**a, "boxes": a["boxes"][:, :, :, :2]}, "boxes"),
    ],
)
def test_malformed_calls_name_the_argument(change, argument):
    value, ss, boxes, logits, _ = make_inputs(0)
    kwargs = change(dict(value=value, spatial_shapes=ss, boxes=boxes, logits=logits, grid_size=4))
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        instance_attention(**kwargs)
