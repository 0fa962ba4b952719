"""Attention-augmented convolution: conv channels are local, attention channels global."""

from __future__ import annotations

import torch

from boxer.layers import create_mixer


def test_conv_channels_are_local_and_attention_channels_global() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("aa_conv", 16, num_heads=2, attn_ratio=0.25, feat_size=(6, 6))
    assert mixer.conv.out_channels == 12 and mixer.core.proj.out_features == 4
    x = torch.randn(1, 16, 6, 6, requires_grad=True)
    mixer(x)[:, :12, 0, 0].sum().backward()
    touched = x.grad.abs().sum(1)[0] > 0
    assert touched[:2, :2].all() and touched.sum() == 4
    x.grad = None
    mixer(x)[:, 12:, 0, 0].sum().backward()
    assert (x.grad.abs().sum(1)[0] > 0).all()


def test_relative_logits_reach_the_attention() -> None:
    """Zeroing the relative tables changes the attention channels only."""
    torch.manual_seed(0)
    mixer = create_mixer("aa_conv", 16, num_heads=2, feat_size=(5, 5)).eval()
    x = torch.randn(1, 16, 5, 5)
    before = mixer(x)
    with torch.no_grad():
        mixer.pos_embed.height_rel.zero_()
        mixer.pos_embed.width_rel.zero_()
    after = mixer(x)
    torch.testing.assert_close(after[:, :8], before[:, :8])
    assert not torch.allclose(after[:, 8:], before[:, 8:])
