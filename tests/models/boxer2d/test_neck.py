"""Neck, encoder windows, box position embedding and the proposal token rule."""

from __future__ import annotations

import math

import torch

from boxer.models.boxer2d.neck import InputProjection, encoder_windows, level_masks, valid_ratios
from boxer.models.boxer2d.position import box_position_embedding, sine_embedding
from boxer.models.boxer2d.proposals import MASKED_LOGIT, ProposalGenerator, valid_tokens


def test_projection_adds_stride64_level():
    proj = InputProjection([32, 64, 128], 32, num_levels=4)
    feats = [torch.randn(2, c, s, s) for c, s in [(32, 16), (64, 8), (128, 4)]]
    outs = proj(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 4, 4), (2, 32, 2, 2)]
    assert isinstance(proj.lateral[0][1], torch.nn.GroupNorm) and proj.extra[0][0].stride == (2, 2)


def test_masks_and_valid_ratios():
    pad = torch.zeros(2, 64, 64, dtype=torch.bool)
    pad[1, :, 32:] = True  # image 1 is 64 x 32
    masks = level_masks(pad, [(8, 8), (4, 4)])
    ratios = valid_ratios(masks, 2, 2, pad.device)
    assert torch.allclose(ratios[0], torch.ones(2, 2))
    assert torch.allclose(ratios[1], torch.tensor([[0.5, 1.0], [0.5, 1.0]]))
    assert level_masks(torch.zeros(1, 8, 8, dtype=torch.bool), [(2, 2)]) is None  # nothing padded


def test_encoder_windows_are_valid_normalised_cell_centres():
    shapes = torch.tensor([[4, 8], [2, 4]])
    ratios = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.5, 1.0], [0.5, 1.0]]])
    win = encoder_windows(shapes, ratios)  # 2, 40, 4
    assert win.shape == (2, 40, 4)
    assert torch.allclose(win[0, 0], torch.tensor([0.5 / 8, 0.5 / 4, 4 / 8, 4 / 4]))
    assert torch.allclose(win[1, 1], torch.tensor([1.5 / 4, 0.5 / 4, 4 / 4, 4 / 4]))  # 4 valid columns
    assert torch.allclose(win[0, 32], torch.tensor([0.5 / 4, 0.5 / 2, 1.0, 2.0]))  # level 1 starts at 32


def test_sine_embedding_layout():
    emb = sine_embedding(torch.tensor([[0.25, 0.75]]), 8)  # 4 features per coordinate
    v = torch.tensor([0.25, 0.75])[:, None] * 2 * math.pi / torch.tensor([1.0, 1.0, 100.0, 100.0])
    expected = torch.stack((v[:, 0].sin(), v[:, 1].cos(), v[:, 2].sin(), v[:, 3].cos()), -1).flatten()
    assert torch.allclose(emb[0], expected, atol=1e-6)
    box = torch.tensor([0.3, 0.4, 0.1, 0.2])
    assert torch.allclose(
        box_position_embedding(box, 8), sine_embedding(box[:2], 8) + sine_embedding(box[2:], 8)
    )


def test_valid_tokens_use_the_or_rule():
    windows = torch.tensor(
        [[[0.5, 0.5, 0.1, 0.1], [0.005, 0.5, 0.1, 0.1], [0.5, 0.995, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1]]]
    )
    padding = torch.tensor([[False, False, False, True]])
    assert valid_tokens(windows, padding).tolist() == [[True, False, False, False]]


def test_proposals_pick_valid_tokens_and_are_detached():
    gen = ProposalGenerator(16)
    memory = torch.randn(1, 6, 16, requires_grad=True)
    windows = torch.tensor([[[0.1 * (i + 1), 0.2, 0.1, 0.1] for i in range(6)]])
    padding = torch.tensor([[False, True, False, True, False, True]])
    props = gen(memory, windows, padding, num_queries=3, dense=True)
    assert props.enc_valid[0].nonzero()[:, 0].tolist() == [0, 2, 4]
    # the box head starts at zero, so proposals are the tokens' own windows: exactly the valid ones
    assert torch.allclose(props.windows[0, :, 0].sort().values, torch.tensor([0.1, 0.3, 0.5]), atol=1e-4)
    assert props.windows.shape == (1, 3, 4) and not props.windows.requires_grad
    assert torch.all(props.enc_logits[0, [1, 3, 5], 0] == MASKED_LOGIT)
    # content queries come from detached memory: no gradient path from tgt to the encoder
    props.tgt.sum().backward()
    assert memory.grad is None
    sparse = gen(memory.detach(), windows, padding, num_queries=3, dense=False)
    assert torch.allclose(sparse.windows.sort(1).values, props.windows.sort(1).values)


def test_projection_skips_maps_finer_than_stride8():
    """A Swin-like backbone returns strides 4..32; the neck uses 8, 16, 32 and adds the stride-64 level."""
    proj = InputProjection([16, 32, 64, 128], 32, in_strides=[4, 8, 16, 32], num_levels=4)
    feats = [torch.randn(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate([16, 32, 64, 128])]
    outs = proj(feats)
    assert proj.used == [1, 2, 3] and [o.shape[-1] for o in outs] == [32, 16, 8, 4]
