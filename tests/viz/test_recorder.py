"""Recorder (`boxer/viz/recorder.py`): hooks see what box-attention computes, and change nothing."""

from __future__ import annotations

import torch

from boxer.layers import BoxAttention, InstanceAttention
from boxer.ops import box_attention
from boxer.viz.geometry import cxcywh_to_xyxy_pixels, token_at_pixel
from boxer.viz.recorder import AttentionRecorder

SHAPES = torch.tensor([[6, 8], [3, 4]])


def _inputs(seed=0, B=1, Q=3, d=16):
    gen = torch.Generator().manual_seed(seed)
    query, value = torch.randn(B, Q, d, generator=gen), torch.randn(B, 60, d, generator=gen)
    ref = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.1, 0.1], [0.8, 0.2, 0.3, 0.2]]])
    return query, value, ref


def test_records_reproduce_the_forward_and_leave_it_unchanged():
    torch.manual_seed(0)
    attn = BoxAttention(16, num_heads=2, num_levels=2, grid_size=2)
    torch.nn.init.normal_(attn.linear_attention.weight)
    query, value, ref = _inputs()
    before = attn(query, value, SHAPES, ref)
    with AttentionRecorder(attn) as rec:
        after = attn(query, value, SHAPES, ref)
    assert torch.equal(before, after)
    (r,) = rec.records[""]
    assert r.weights.shape == (1, 3, 2, 2, 2, 2) and r.points.shape == (1, 3, 2, 2, 2, 2, 2)
    torch.testing.assert_close(r.weights.sum((-3, -2, -1)), torch.ones(1, 3, 2))
    v = attn.project_value(value, None)
    out = box_attention(v, SHAPES, r.boxes, r.weights, backend="reference")  # no valid ratios: same maps
    torch.testing.assert_close(attn.out_proj(out), after, atol=1e-5, rtol=1e-5)
    assert len(AttentionRecorder(attn).records[""]) == 0  # hooks removed on exit


def test_points_are_cell_centres_of_the_window():
    attn = BoxAttention(16, num_heads=1, num_levels=1, grid_size=2)
    torch.nn.init.zeros_(attn.linear_box.bias)  # windows = reference windows
    query, value, ref = _inputs()
    with AttentionRecorder(attn) as rec:
        attn(query, value[:, :48], SHAPES[:1], ref)
    pts = rec.records[""][0].points[0, 0, 0, 0]  # m, m, 2 of the window (0.5, 0.5, 0.2, 0.4)
    torch.testing.assert_close(pts[0, 0], torch.tensor([0.45, 0.4]))
    torch.testing.assert_close(pts[1, 1], torch.tensor([0.55, 0.6]))
    box = cxcywh_to_xyxy_pixels(rec.records[""][0].boxes[0, 0, 0, 0], 200, 100)
    torch.testing.assert_close(box, torch.tensor([80.0, 30.0, 120.0, 70.0]))


def test_instance_attention_weights_fill_the_grid():
    attn = InstanceAttention(16, num_heads=2, num_levels=2, grid_size=4)
    query, value, ref = _inputs()
    with AttentionRecorder(attn) as rec:
        attn(query, value, SHAPES, ref, return_mask_features=False)
    w = rec.records[""][0].weights
    assert w.shape == (1, 3, 2, 2, 4, 4)
    torch.testing.assert_close(w.sum((-3, -2, -1)), torch.ones(1, 3, 2))


def test_token_at_pixel_per_level():
    shapes = [(8, 8), (4, 4)]
    ratios = torch.tensor([[0.75, 0.5], [0.75, 0.5]])  # valid part: 6 x 4 of 8 x 8 cells
    idx = token_at_pixel(59.0, 10.0, width=60, height=40, shapes=shapes, ratios=ratios)
    assert idx == [1 * 8 + 5, 64 + 0 * 4 + 2]
