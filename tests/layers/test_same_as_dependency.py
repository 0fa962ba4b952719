"""Helpers that a dependency also has: where ours is numerically the same we call the dependency's,
and these tests show the equality; where it is not (or the swap would rename state-dict keys), the
test records why ours stays."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def _window_partition_reference(x, win_h, win_w):  # ours before the swap to timm's
    B, H, W, C = x.shape
    x = x.view(B, H // win_h, win_h, W // win_w, win_w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, win_h * win_w, C)


def _window_reverse_reference(windows, win_h, win_w, height, width):  # ours before the swap
    C = windows.shape[-1]
    x = windows.view(-1, height // win_h, width // win_w, win_h, win_w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, C)


@pytest.mark.parametrize(
    ("shape", "win"), [((2, 12, 20, 5), (3, 4)), ((1, 7, 7, 3), (7, 7)), ((3, 8, 8, 1), (2, 2))]
)
def test_window_partition_is_timms(shape, win):
    from timm.models.swin_transformer import window_partition as timm_partition
    from timm.models.swin_transformer import window_reverse as timm_reverse

    from boxer.layers.mixers.window import window_partition, window_reverse

    x = torch.randn(shape)
    windows = _window_partition_reference(x, *win)
    assert torch.equal(timm_partition(x, win).flatten(1, 2), windows)
    assert torch.equal(window_partition(x, *win), windows)
    back = _window_reverse_reference(windows, *win, *shape[1:3])
    assert torch.equal(timm_reverse(windows.view(-1, *win, shape[-1]), win, *shape[1:3]), back)
    assert torch.equal(window_reverse(windows, *win, *shape[1:3]), back) and torch.equal(back, x)
    mask = torch.rand(shape[1:3]) > 0.5  # bool maps go through it too (shifted-window masks)
    assert torch.equal(
        window_partition(mask[None, :, :, None], *win),
        _window_partition_reference(mask[None, :, :, None], *win),
    )


def test_inverse_sigmoid_is_not_torch_logit_at_the_clamp():
    """Equal inside [eps, 1 - eps], but ours clamps numerator and denominator separately: at x = 1
    (a saturated sigmoid reference) ours gives log(1 / eps) = 11.513, torch.logit log((1 - eps) / eps)
    in float32 = 11.512. The box heads' outputs would move, so ours stays."""
    from boxer.models.boxer2d.blocks import inverse_sigmoid

    eps = 1e-5
    inside = torch.cat([torch.rand(10_000) * (1 - 2 * eps) + eps, torch.tensor([eps, 0.5, 1 - eps])])
    assert torch.equal(inverse_sigmoid(inside, eps), torch.logit(inside, eps))
    edges = torch.tensor([0.0, 1e-7, 1 - 1e-7, 1.0])
    assert not torch.equal(inverse_sigmoid(edges, eps), torch.logit(edges, eps))
    assert inverse_sigmoid(torch.tensor([1.0]), eps).item() == pytest.approx(11.5129, abs=1e-4)


def test_mlp_keeps_its_keys():
    """torchvision.ops.MLP computes the same chain, but names its Linears 0, 3, 6 (a Dropout after
    each ReLU) where ours and the official BoxeR / DETR checkpoints use layers.0, layers.1, layers.2
    (boxer/models/boxer2d/official.py maps `bbox_embed.layers.N`); timm's Mlp has two layers only.
    So ours stays, and DETR uses BoxeR-2D's (they were the same class, written twice)."""
    from torchvision.ops import MLP as TorchvisionMLP

    from boxer.models.boxer2d.blocks import MLP

    torch.manual_seed(0)
    ours = MLP(8, 16, 4, num_layers=3)
    theirs = TorchvisionMLP(8, [16, 16, 4], activation_layer=nn.ReLU)
    assert [k for k in ours.state_dict()] == [f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    assert [k for k in theirs.state_dict()] != [k for k in ours.state_dict()]
    theirs.load_state_dict(dict(zip(theirs.state_dict(), ours.state_dict().values())))
    x = torch.randn(5, 8)
    assert torch.equal(theirs.eval()(x), ours(x))
    relu_chain = x  # DETR's MLP before it used this one: Linear, .relu(), Linear, .relu(), Linear
    for i, layer in enumerate(ours.layers):
        relu_chain = layer(relu_chain) if i == 2 else layer(relu_chain).relu()
    assert torch.equal(relu_chain, ours(x))


def test_viz_box_corners_are_torchvisions_box_convert():
    """boxer/viz/geometry.py wrote cxcywh -> xyxy by hand (centre -/+ size / 2); torchvision's
    box_convert computes cx -/+ 0.5 * w, the same bits (halving is exact), so the viz calls it."""
    from torchvision.ops import box_convert

    from boxer.viz.geometry import cxcywh_to_xyxy_pixels

    boxes = torch.rand(3, 5, 2, 4, generator=torch.Generator().manual_seed(0))
    centre, size = boxes[..., :2], boxes[..., 2:4]
    before = torch.cat((centre - size / 2, centre + size / 2), dim=-1)  # ours before the swap
    assert torch.equal(box_convert(boxes, "cxcywh", "xyxy"), before)
    scale = torch.tensor([200.0, 100.0, 200.0, 100.0])
    assert torch.equal(cxcywh_to_xyxy_pixels(boxes, 200, 100), before * scale)
