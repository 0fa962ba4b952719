"""MobileViT: unfolding puts the pixels of one in-patch offset in one sequence; fold inverts it."""

from __future__ import annotations

import torch

from boxer.layers import create_mixer
from boxer.layers.mixers.mobilevit import fold_patches, unfold_patches


def test_unfold_groups_pixels_by_offset_and_fold_inverts() -> None:
    x = torch.randn(2, 3, 6, 8)
    seq = unfold_patches(x, 2)  # B*4, 12, C
    assert seq.shape == (8, 12, 3)
    torch.testing.assert_close(seq[1], x[0, :, 0::2, 1::2].flatten(1).t())  # batch 0, offset (0, 1)
    torch.testing.assert_close(fold_patches(seq, 2, 6, 8), x)


def test_transformer_mixes_only_pixels_of_the_same_offset() -> None:
    """With 1x1 local and fusion convs, (0, 0) reaches only the even rows and columns (plus itself)."""
    torch.manual_seed(0)
    mixer = create_mixer("mobilevit", 8, num_heads=2, kernel_size=1)
    x = torch.randn(1, 8, 6, 6, requires_grad=True)
    mixer(x)[..., 0, 0].sum().backward()
    touched = x.grad.abs().sum(1)[0] > 0
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[0::2, 0::2] = True
    assert torch.equal(touched, expected)
