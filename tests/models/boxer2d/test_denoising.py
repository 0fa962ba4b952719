"""Denoising queries (DN-DETR / DINO): the attention mask by gradients (matching queries never depend
on a denoising query, groups never on each other), noise ranges, and the losses."""

from __future__ import annotations

import torch
from torchvision.ops import box_convert, box_iou

import boxer
from boxer.models.boxer2d.denoising import DenoisingGenerator, attention_mask, noised_boxes
from boxer.models.boxer2d.position import box_position_embedding

KW = dict(num_classes=4, dim=32, enc_layers=1, dec_layers=2, ffn_dim=64, num_queries=6)


def _targets():
    return [
        {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.7, 0.3, 0.2]])},
        {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.3]])},
    ]


def test_mask_blocks_matching_from_denoising_and_groups_from_each_other():
    real = torch.tensor([[True, True, True, True, True, True], [True, False, True, False, True, False]])
    m = attention_mask(real, groups=3, per_group=2, num_matching=4)[:, 0]  # B, T, T
    assert not m[:, 6:, :6].any(), "matching rows see no denoising key"
    assert m[:, :, 6:].all(), "everyone sees the matching queries"
    assert not m[0, 0, 2:6].any() and m[0, 0, :2].all(), "a group sees only itself"
    assert not m[1, 0, 1] and m[1, 1, 1] and not m[1, 0, 3], "padding hidden except from itself"


def test_gradients_respect_the_mask():
    """A matching query's output has no gradient path to any denoising input; group g's outputs none to
    group h's inputs: checked through the real decoder, by autograd."""
    torch.manual_seed(0)
    model = boxer.create_model("boxer2d_r18_lite", dn_groups=3, **KW)
    gen = model.denoising
    dn = gen([{"labels": t["labels"], "boxes": t["boxes"]} for t in _targets()])
    tgt = dn.tgt.detach().requires_grad_(True)
    dn = dn._replace(tgt=tgt)
    x = torch.randn(2, 3, 64, 64)
    out = model._run(x, None, dense=False, denoise=dn)
    per_group = dn.per_group
    # a random projection of the states (their plain sum is a LayerNorm output's sum: constant, so its
    # gradient would be rounding noise)
    proj = torch.randn(out.dn_states[-1].shape[-1])
    # matching queries
    (g,) = torch.autograd.grad((out.states[-1].t3 @ proj).sum(), tgt, retain_graph=True)
    assert g.abs().max() == 0
    # group 0 of image 0 against the other groups
    (g,) = torch.autograd.grad((out.dn_states[-1][0, :per_group] @ proj).sum(), tgt, retain_graph=True)
    assert g[:, per_group:].abs().max() == 0 and g[0, :per_group].abs().max() > 0
    assert g[1].abs().max() == 0, "images are independent"


def test_noise_ranges():
    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[0.5, 0.5, 0.4, 0.2]]).repeat(500, 1)
    pos = noised_boxes(boxes, 0.4, negative=False, generator=gen)
    neg = noised_boxes(boxes, 0.4, negative=True, generator=gen)
    xyxy = [box_convert(b, "cxcywh", "xyxy") for b in (boxes, pos, neg)]
    half = torch.tensor([0.2, 0.1, 0.2, 0.1])  # half width / height per corner coordinate
    assert ((xyxy[1] - xyxy[0]).abs() <= 0.4 * half + 1e-6).all(), "positives: below scale x half size"
    shift = (xyxy[2] - xyxy[0]).abs()
    assert (shift >= 0.4 * half - 1e-6).all() & (shift <= 0.8 * half + 1e-6).all(), "negatives: 1-2x"
    iou = box_iou(xyxy[1], xyxy[0][:1]).mean(), box_iou(xyxy[2], xyxy[0][:1]).mean()
    assert iou[0] > iou[1]


def test_generator_pads_and_marks_positives():
    torch.manual_seed(0)
    gen = DenoisingGenerator(32, 4, groups=2, negatives=True)
    dn = gen(_targets())
    assert dn.tgt.shape == (2, 8, 32) and dn.per_group == 4 and dn.num == 8
    assert dn.real.sum(1).tolist() == [8, 4]
    assert dn.positive[0].tolist() == [True, True, False, False] * 2
    assert torch.allclose(dn.pos, box_position_embedding(dn.windows, 32))
    assert gen([{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}]) is None


def test_training_with_denoising_adds_terms_and_trains_the_label_embedding():
    torch.manual_seed(0)
    model = boxer.create_model("boxer2d_r18_lite", dn_groups=2, dn_negatives=True, **KW)
    t = [
        {
            "boxes": torch.tensor([[5.0, 5, 30, 40], [20, 30, 60, 60]]),
            "labels": torch.tensor([0, 3]),
            "size": (64, 64),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "size": (64, 64)},
    ]
    losses = model(torch.randn(2, 3, 64, 64), None, t)
    assert {"loss_ce_dn", "loss_bbox_dn", "loss_giou_dn", "loss_ce_dn_0"} <= set(losses)
    losses["loss"].backward()
    assert model.denoising.label_embed.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(v) for v in losses.values())
