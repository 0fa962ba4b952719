"""InstanceAttention module (docs/ops.md, `instance_attention`): coarse logits, both softmaxes, mask
features."""

from __future__ import annotations

import torch

from boxer.layers import InstanceAttention
from boxer.ops import instance_attention

SHAPES = torch.tensor([[6, 8], [3, 4]])


def _data(B=2, Q=3, d=16):
    gen = torch.Generator().manual_seed(0)
    ref = torch.cat(
        (torch.rand(B, Q, 2, generator=gen) * 0.8 + 0.1, torch.rand(B, Q, 2, generator=gen) * 0.4), -1
    )
    return torch.randn(B, Q, d, generator=gen), torch.randn(B, 60, d, generator=gen), ref


def test_shapes_init_and_linear_box_marker():
    m = InstanceAttention(16, num_heads=2, num_levels=2)
    assert m.grid_size == 14 and m.linear_attention.out_features == 2 * 2 * 4
    assert (
        torch.count_nonzero(m.linear_attention.weight) == 0 and torch.count_nonzero(m.linear_box.weight) == 0
    )
    assert ((m.linear_box.bias >= 0) & (m.linear_box.bias < 1)).all()
    assert {n for n, _ in m.named_parameters() if "linear_box" in n} == {
        "linear_box.weight",
        "linear_box.bias",
    }
    query, value, ref = _data()
    out, feats = m(query, value, SHAPES, ref)
    assert out.shape == (2, 3, 16) and feats.shape == (2, 3, 14, 14, 16)
    out2, none = m(query, value, SHAPES, ref, return_mask_features=False)
    assert none is None
    torch.testing.assert_close(out2, out)


def test_forward_equals_the_functional_op_through_the_same_out_proj():
    torch.manual_seed(0)
    m = InstanceAttention(16, num_heads=2, num_levels=2, grid_size=4)
    torch.nn.init.normal_(m.linear_attention.weight)
    query, value, ref = _data()
    out, feats = m(query, value, SHAPES, ref)
    boxes = m.windows(query, ref, None)[0]
    logits = m.linear_attention(query).view(2, 3, 2, 2, 2, 2)
    v = m.value_proj(value).view(2, 60, 2, 8)
    o, f = instance_attention(v, SHAPES, boxes, logits, grid_size=4, backend="reference")
    torch.testing.assert_close(out, m.out_proj(o))
    torch.testing.assert_close(feats, m.out_proj(f))


def test_gradients_from_mask_features_reach_parameters():
    m = InstanceAttention(16, num_heads=2, num_levels=2, grid_size=4)
    query, value, ref = _data()
    _, feats = m(query, value, SHAPES, ref)
    feats.square().sum().backward()
    for name in ("value_proj.weight", "linear_attention.weight", "linear_box.weight", "out_proj.weight"):
        assert m.get_parameter(name).grad.abs().sum() > 0, name
