"""Deformable attention: keys are sampled at reference points moved by offsets read from queries."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from boxer.layers import create_mixer


def test_zero_offsets_sample_the_reference_grid() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("deformable", 8, num_heads=2, stride=2)
    with torch.no_grad():
        mixer.offset[-1].weight.zero_()
    x = torch.randn(2, 8, 6, 10)
    torch.testing.assert_close(mixer.sample(x, x), F.avg_pool2d(x, 2))  # cell centres, bilinear


def test_offsets_move_the_samples_and_learn() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("deformable", 8, num_heads=2, stride=2, groups=2)
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        mixer.offset[-1].weight.normal_()
    assert not torch.allclose(mixer.sample(x, x), F.avg_pool2d(x, 2))
    mixer(x).square().mean().backward()
    assert mixer.offset[-1].weight.grad.abs().sum() > 0
