"""BoxAttention module (docs/ops.md, "Modules"): init, the 1/8 window rule, per-head windows, valid ratios,
padding mask, rotation and the parameter-name marker of the offset Linear."""

from __future__ import annotations

import math

import pytest
import torch

from boxer.layers import BoxAttention
from boxer.layers.box_attention import transform_windows
from boxer.ops import box_attention

SHAPES = torch.tensor([[6, 8], [3, 4]])


def _data(seed=0, B=2, Q=5, d=16, S=60):
    gen = torch.Generator().manual_seed(seed)
    query, value = torch.randn(B, Q, d, generator=gen), torch.randn(B, S, d, generator=gen)
    ref = torch.cat(
        (torch.rand(B, Q, 2, generator=gen) * 0.8 + 0.1, torch.rand(B, Q, 2, generator=gen) * 0.3 + 0.05), -1
    )
    return query, value, ref


def test_init_matches_spec():
    m = BoxAttention(32, num_heads=4, num_levels=2, grid_size=2)
    assert m.linear_attention.out_features == 4 * 2 * 4 and m.linear_box.out_features == 4 * 2 * 4
    assert (
        torch.count_nonzero(m.linear_attention.weight) == 0
        and torch.count_nonzero(m.linear_attention.bias) == 0
    )
    assert torch.count_nonzero(m.linear_box.weight) == 0
    assert (m.linear_box.bias >= 0).all() and (m.linear_box.bias < 1).all() and m.linear_box.bias.std() > 0.1
    bound = math.sqrt(6 / (32 + 32))
    for proj in (m.value_proj, m.out_proj):
        assert proj.weight.abs().max() <= bound and proj.weight.std() > bound / 4
        assert torch.count_nonzero(proj.bias) == 0
    names = [n for n, _ in m.named_parameters() if "linear_box" in n]
    assert names == ["linear_box.weight", "linear_box.bias"]


def test_window_transform_one_eighth_rule_and_relu():
    ref = torch.tensor([0.5, 0.4, 0.2, 0.1]).view(1, 1, 1, 1, 4)
    offsets = torch.tensor([1.0, -2.0, 4.0, -9.0]).view(1, 1, 1, 1, 4)
    boxes, angles = transform_windows(ref, offsets)
    expected = [0.5 + 1 * 0.2 / 8, 0.4 - 2 * 0.1 / 8, 0.2 * (1 + 4 / 8), 0.0]  # h: 0.1 * (1 - 9/8) < 0 -> 0
    torch.testing.assert_close(boxes.view(4), torch.tensor(expected))
    assert angles is None


def test_initial_windows_shift_right_down_and_grow():
    m = BoxAttention(16, num_heads=2, num_levels=2)
    query, _, ref = _data(d=16)
    boxes, _ = m.windows(query, ref, None)
    r = ref[:, :, None, None]
    assert (boxes[..., :2] >= r[..., :2]).all() and (boxes[..., :2] <= r[..., :2] + r[..., 2:] / 8).all()
    assert (boxes[..., 2:] >= r[..., 2:]).all() and (boxes[..., 2:] <= r[..., 2:] * 1.125).all()


def test_forward_equals_the_functional_op():
    torch.manual_seed(0)
    m = BoxAttention(16, num_heads=2, num_levels=2)
    torch.nn.init.normal_(m.linear_attention.weight)
    torch.nn.init.normal_(m.linear_box.weight, std=0.3)
    query, value, ref = _data()
    out = m(query, value, SHAPES, ref)
    boxes = m.windows(query, ref, None)[0]
    weights = m.linear_attention(query).view(2, 5, 2, 8).softmax(-1).view(2, 5, 2, 2, 2, 2)
    v = m.value_proj(value).view(2, 60, 2, 8)
    expected = m.out_proj(box_attention(v, SHAPES, boxes, weights, backend="reference"))
    torch.testing.assert_close(out, expected)


def test_per_head_windows():
    torch.manual_seed(1)
    m = BoxAttention(16, num_heads=2, num_levels=2)
    query, value, ref = _data()
    shared = m(query, value, SHAPES, ref)
    torch.testing.assert_close(m(query, value, SHAPES, ref[:, :, None].expand(-1, -1, 2, -1)), shared)
    per_head = ref[:, :, None].repeat(1, 1, 2, 1)
    per_head[:, :, 1, :2] = 1 - per_head[:, :, 1, :2]  # head 1 looks elsewhere
    boxes = m.windows(query, per_head, None)[0]
    torch.testing.assert_close(boxes[:, :, 0], m.windows(query, ref, None)[0][:, :, 0])
    assert not torch.allclose(m(query, value, SHAPES, per_head), shared)


def test_valid_ratios_and_padding_mask_make_padding_invisible():
    """A padded batch (zero-padded maps, padding mask, valid ratios) gives the unpadded output."""
    torch.manual_seed(2)
    m = BoxAttention(16, num_heads=2, num_levels=2)
    torch.nn.init.normal_(m.linear_box.weight, std=0.3)
    B, Q, d = 1, 4, 16
    small, big = [(4, 6), (2, 3)], [(5, 8), (3, 4)]
    query, _, ref = _data(3, B=B, Q=Q, d=d)
    feats = [torch.randn(B, h, w, d) for h, w in small]
    value = torch.cat([f.flatten(1, 2) for f in feats], 1)
    padded, mask = [], []
    for f, (h, w), (hp, wp) in zip(feats, small, big):
        p = torch.randn(B, hp, wp, d)  # garbage in the padded area
        p[:, :h, :w] = f
        keep = torch.zeros(B, hp, wp, dtype=torch.bool)
        keep[:, :h, :w] = True
        padded.append(p.flatten(1, 2))
        mask.append(~keep.flatten(1, 2))
    ratios = torch.tensor([[w / wp, h / hp] for (h, w), (hp, wp) in zip(small, big)]).expand(B, -1, -1)
    out = m(query, value, torch.tensor(small), ref)
    out_padded = m(
        query,
        torch.cat(padded, 1),
        torch.tensor(big),
        ref,
        valid_ratios=ratios,
        padding_mask=torch.cat(mask, 1),
    )
    torch.testing.assert_close(out_padded, out, rtol=1e-5, atol=1e-5)


def test_rotation_option():
    torch.manual_seed(3)
    m = BoxAttention(16, num_heads=2, num_levels=2, with_rotation=True)
    assert m.linear_box.out_features == 2 * 2 * 5
    query, value, ref = _data()
    ref5 = torch.cat((ref, torch.rand(2, 5, 1)), -1)
    boxes, angles = m.windows(query, ref5, None)
    delta = m.linear_box(query).view(2, 5, 2, 2, 5)[..., 4]
    torch.testing.assert_close(angles, (ref5[:, :, None, None, 4] + delta / 16) * 2 * math.pi)
    # zero angle: same as the unrotated module with the same parameters
    with torch.no_grad():
        m.linear_box.bias.view(2, 2, 5)[..., 4] = 0
    plain = BoxAttention(16, num_heads=2, num_levels=2)
    state = m.state_dict()
    keep = torch.arange(20).view(2, 2, 5)[..., :4].flatten()
    state["linear_box.weight"], state["linear_box.bias"] = (
        state["linear_box.weight"][keep],
        state["linear_box.bias"][keep],
    )
    plain.load_state_dict(state)
    zero = torch.cat((ref, torch.zeros(2, 5, 1)), -1)
    torch.testing.assert_close(m(query, value, SHAPES, zero), plain(query, value, SHAPES, ref))
    assert m(query, value, SHAPES, ref5).shape == (2, 5, 16)


def test_fixed_reference_angle_without_rotation():
    m = BoxAttention(16, num_heads=2, num_levels=2)
    query, _, ref = _data()
    _, angles = m.windows(query, torch.cat((ref, torch.full((2, 5, 1), 0.25)), -1), None)
    torch.testing.assert_close(angles, torch.full((2, 5, 2, 2), math.pi / 2))


def test_gradients_reach_every_parameter_and_autocast():
    m = BoxAttention(16, num_heads=2, num_levels=2)
    query, value, ref = _data()
    m(query, value, SHAPES, ref).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert m.linear_box.weight.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(query, value, SHAPES, ref)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(ref_windows=torch.rand(2, 5, 3)), "ref_windows"),
        (dict(valid_ratios=torch.rand(2, 3, 2)), "valid_ratios"),
        (dict(padding_mask=torch.zeros(2, 59, dtype=torch.bool)), "padding_mask"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, argument):
    m = BoxAttention(16, num_heads=2, num_levels=2)
    query, value, ref = _data()
    ref = kwargs.pop("ref_windows", ref)
    with pytest.raises(ValueError, match=f"^{argument}:"):
        m(query, value, SHAPES, ref, **kwargs)
