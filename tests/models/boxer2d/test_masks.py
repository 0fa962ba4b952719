"""Masks: targets via roi_align, pasting, rescoring, the mask head, instance-attention in the decoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from boxer.layers import BoxAttention, InstanceAttention
from boxer.models.boxer2d.decoder import DecoderLayer
from boxer.models.boxer2d.masks import MaskHead, mask_targets, paste_and_rescore, paste_masks


def _ellipses(n: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n filled ellipses (uint8 masks) and their tight xyxy boxes."""
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    masks, boxes = [], []
    for _ in range(n):
        rx, ry = (torch.rand(2, generator=gen) * torch.tensor([w / 4, h / 4]) + 16).tolist()
        cx = float(torch.rand(1, generator=gen) * (w - 2 * rx) + rx)
        cy = float(torch.rand(1, generator=gen) * (h - 2 * ry) + ry)
        m = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
        yy, xx = m.nonzero(as_tuple=True)
        masks.append(m.to(torch.uint8))
        boxes.append(torch.tensor([xx.min(), yy.min(), xx.max() + 1, yy.max() + 1], dtype=torch.float32))
    return torch.stack(masks), torch.stack(boxes)


def _cell_centre_reference(
    masks: torch.Tensor, boxes: torch.Tensor, size: int, padding: str = "zeros"
) -> torch.Tensor:
    """Bilinear samples (grid_sample, align_corners=False) at the size x size cell centres of each box."""
    h, w = masks.shape[-2:]
    u = (torch.arange(size) + 0.5) / size  # cell centres in [0, 1] of the box
    out = []
    for m, (x1, y1, x2, y2) in zip(masks.float(), boxes):
        px, py = x1 + u * (x2 - x1), y1 + u * (y2 - y1)  # pixel coordinates (pixel i spans [i, i+1])
        gy, gx = torch.meshgrid(2 * py / h - 1, 2 * px / w - 1, indexing="ij")
        grid = torch.stack((gx, gy), -1)[None]
        out.append(
            F.grid_sample(m[None, None], grid, mode="bilinear", padding_mode=padding, align_corners=False)[
                0, 0
            ]
        )
    return torch.stack(out)


def test_targets_equal_cell_centre_sampling():
    """roi_align(aligned=True, sampling_ratio=1) takes one bilinear sample at each bin centre: the paper's
    cell-centre sampling (docs/boxer2d.md, "Masks"). It replicates the edge pixel (grid_sample "border")
    where the official grid_sample pads with zeros, which only matters within half a pixel of the image
    edge."""
    gen = torch.Generator().manual_seed(0)
    masks = (torch.rand(6, 40, 56, generator=gen) > 0.5).to(torch.uint8)
    xy = torch.rand(6, 2, generator=gen) * torch.tensor([20.0, 12.0]) + 1  # boxes end before 48 x 34
    wh = torch.rand(6, 2, generator=gen) * torch.tensor([24.0, 18.0]) + 3
    boxes = torch.cat((xy, xy + wh), 1)
    boxes[0] = torch.tensor([0.0, 0.0, 56.0, 40.0])  # touches every edge
    boxes[1] = torch.tensor([0.0, 37.5, 2.0, 40.0])  # tiny, in a corner
    raw = roi_align(
        masks.float()[:, None],
        torch.cat((torch.arange(6.0)[:, None], boxes), 1),
        28,
        sampling_ratio=1,
        aligned=True,
    )[:, 0]
    assert torch.allclose(raw, _cell_centre_reference(masks, boxes, 28, "border"), atol=1e-5)
    ours = mask_targets(masks, boxes, 28)
    assert torch.equal(ours, (raw >= 0.5).float())
    ref = _cell_centre_reference(masks[2:], boxes[2:], 28, "zeros")  # boxes >= 1 px from the edges
    decided = (ref - 0.5).abs() > 1e-5  # exact ties (midway between a 0 and a 1 pixel) may round either way
    assert torch.equal(ours[2:][decided], (ref[decided] >= 0.5).float())


def test_paste_equals_grid_sample_inside_the_box():
    gen = torch.Generator().manual_seed(1)
    probs = torch.rand(3, 28, 28, generator=gen)
    boxes = torch.tensor([[10.3, 5.7, 60.2, 33.1], [0.0, 0.0, 80.0, 48.0], [30.0, 20.0, 41.5, 29.0]])
    pasted = paste_masks(probs, boxes, 48, 80)
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(80) + 0.5, indexing="ij")
    for p, (x1, y1, x2, y2), got in zip(probs, boxes, pasted):
        grid = torch.stack((2 * (xs - x1) / (x2 - x1) - 1, 2 * (ys - y1) / (y2 - y1) - 1), -1)[None]
        ref = F.grid_sample(p[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[
            0, 0
        ]
        inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        assert torch.allclose(got[inside], ref[inside], atol=1e-5)
        assert torch.all(got[~inside] == 0)


def test_paste_round_trip_iou():
    gen = torch.Generator().manual_seed(2)
    masks, boxes = _ellipses(8, 120, 160, gen)
    small = mask_targets(masks, boxes, 28)
    pasted = paste_masks(small, boxes, 120, 160) >= 0.5
    gt = masks.bool()
    iou = (pasted & gt).flatten(1).sum(1) / (pasted | gt).flatten(1).sum(1)
    assert float(iou.min()) >= 0.9, iou


def test_rescoring_and_empty_masks():
    logits = torch.full((2, 28, 28), -10.0)
    logits[1, 7:21, 7:21] = 10.0
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0], [10.0, 10.0, 50.0, 50.0]])
    masks, scores = paste_and_rescore(logits, boxes, torch.tensor([0.9, 0.8]), 64, 64)
    assert masks.dtype == torch.bool and masks.shape == (2, 64, 64)
    assert not masks[0].any() and torch.isfinite(scores).all() and scores[0] == 0
    assert 0.7 < scores[1] < 0.8  # mostly confident foreground keeps most of its score
    assert masks[1, 30, 30] and not masks[1, 5, 5]


def test_mask_head_keeps_the_selected_channel():
    torch.manual_seed(0)
    head = MaskHead(16, 5)
    feats = torch.randn(4, 14, 14, 16)
    classes = torch.tensor([0, 3, 3, 4])
    x = F.relu(head.conv(F.relu(head.upsample(feats.permute(0, 3, 1, 2)))))
    full = head.predictor(x)  # 4, 5, 28, 28
    assert torch.allclose(head(feats, classes), full[torch.arange(4), classes], atol=1e-5)


def test_instance_attention_output_equals_box_attention_with_upsampled_weights():
    """The output path of instance-attention is box-attention on the 14 x 14 grid whose logits are the
    2 x 2 logits repeated over 7 x 7 quadrants."""
    torch.manual_seed(0)
    d, heads, levels = 32, 4, 2
    inst = InstanceAttention(d, num_heads=heads, num_levels=levels, grid_size=14)
    box = BoxAttention(d, num_heads=heads, num_levels=levels, grid_size=14)
    for name in ("value_proj", "linear_box", "out_proj"):
        getattr(box, name).load_state_dict(getattr(inst, name).state_dict())
    torch.nn.init.normal_(inst.linear_attention.weight, std=0.2)
    torch.nn.init.normal_(inst.linear_attention.bias, std=0.2)
    w = inst.linear_attention.weight.view(heads, levels, 2, 2, d)
    b = inst.linear_attention.bias.view(heads, levels, 2, 2)
    up = lambda t: t.repeat_interleave(7, 2).repeat_interleave(7, 3)  # noqa: E731
    box.linear_attention.weight.data = up(w).reshape(-1, d)
    box.linear_attention.bias.data = up(b).reshape(-1)
    shapes = torch.tensor([[8, 10], [4, 5]])
    value = torch.randn(2, 100, d)
    query = torch.randn(2, 7, d)
    windows = torch.cat((torch.rand(2, 7, 2) * 0.6 + 0.2, torch.rand(2, 7, 2) * 0.3 + 0.1), -1)
    out, _ = inst(query, value, shapes, windows, return_mask_features=False)
    assert torch.allclose(out, box(query, value, shapes, windows), atol=1e-5)


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_deferred_mask_features_equal_the_spec(mode):
    """Recomputing R for a subset of queries gives what the paper's in-layer computation gives
    (docs/boxer2d.md, "Deviations")."""
    torch.manual_seed(0)
    d = 32
    layer = DecoderLayer(
        d, num_heads=4, num_levels=2, ffn_dim=48, with_masks=True, mask_grid=4, residual_mode=mode
    )
    torch.nn.init.normal_(layer.cross_attn.linear_attention.weight, std=0.2)
    shapes = torch.tensor([[8, 10], [4, 5]])
    memory, t, pos = torch.randn(2, 100, d), torch.randn(2, 6, d), torch.randn(2, 6, d)
    windows = torch.cat((torch.rand(2, 6, 2) * 0.6 + 0.2, torch.rand(2, 6, 2) * 0.3 + 0.1), -1)
    ratios = torch.ones(2, 2, 2)
    state = layer(t, pos, memory, shapes, windows, ratios, None)
    # the paper's form, in one pass for every query
    t1 = layer.norm1(t + layer.self_attn(t, pos))
    att, r = layer.cross_attn(t1 + pos, memory, shapes, windows, valid_ratios=ratios)
    t2 = layer.norm2(t1 + att)
    r = layer.norm2(t2[:, :, None, None] + r)
    t3 = layer.norm3(t2 + layer.ffn(t2))
    r = layer.norm3(r + layer.ffn(r)) if mode == "v1" else layer.norm3(t3[:, :, None, None] + r)
    assert torch.allclose(state.t3, t3, atol=1e-5)
    idx = torch.tensor([[4, 1], [0, 5]])

    def take(x):
        return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))

    sub = layer.mask_features(
        type(state)(*(take(s) for s in state)), take(pos), memory, shapes, take(windows), ratios, None
    )
    expected = torch.stack([r[0, [4, 1]], r[1, [0, 5]]])
    assert torch.allclose(sub, expected, atol=1e-5)


def test_paste_of_a_box_half_outside_equals_the_unclipped_paste_cut_to_the_image():
    """As the official post-processing: the mask fills its full box and what lies outside is cut off;
    clipping the box first would squeeze the mask into the visible half."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 28, 28, generator=gen) * 3
    boxes = torch.tensor([[-30.25, 6.5, 29.75, 38.0], [20.0, -16.5, 52.0, 15.5]])  # half out left / top
    scores = torch.tensor([0.9, 0.7])
    masks, rescored = paste_and_rescore(logits, boxes, scores, 40, 60)
    shift = torch.tensor([32.0, 32.0, 32.0, 32.0])  # a canvas large enough for the full boxes
    canvas = paste_masks(logits.sigmoid(), boxes + shift, 40 + 32, 60 + 32)[:, 32:, 32:]
    assert torch.equal(masks, canvas >= 0.5)
    mean = (canvas * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)
    assert torch.allclose(rescored, scores * mean)
    clipped, _ = paste_and_rescore(logits, boxes.clamp(min=0), scores, 40, 60)
    assert not torch.equal(clipped, masks)  # the squeezed paste is a different mask


def test_foreground_threshold_is_inclusive():
    masks, _ = paste_and_rescore(
        torch.zeros(1, 28, 28), torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.ones(1), 8, 8
    )
    assert masks.all()  # probability exactly 0.5 is foreground, as in the official code
