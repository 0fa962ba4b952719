"""Partial attention: background outputs depend on the foreground only through Q_A's bridge token."""

from __future__ import annotations

import pytest
import torch

from boxer.layers import create_mixer
from boxer.layers.mixers.partial import foreground_count


def test_foreground_ratio_sets_the_split() -> None:
    mixer = create_mixer("partial", 8, num_heads=2, fg_ratio=0.25)
    fg, bg = mixer.separate(torch.randn(2, 36, 8))
    assert fg.shape == (2, 9) and bg.shape == (2, 27)
    assert (
        foreground_count(1, 0.5) == 1 and foreground_count(10, 1.0) == 10 and foreground_count(10, 0.99) == 9
    )
    with pytest.raises(ValueError, match="fg_ratio"):
        create_mixer("partial", 8, num_heads=2, fg_ratio=0.0)


def test_background_receives_the_bridge_token_only() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("partial", 8, num_heads=2, fg_ratio=0.5)
    x = torch.randn(1, 8, 6, 6, requires_grad=True)
    fg, bg = mixer.separate(x.flatten(2).transpose(1, 2))
    out = mixer(x).flatten(2)[0].t()  # HW, C
    bg_out = out[bg[0]]
    torch.testing.assert_close(bg_out, bg_out[:1].expand_as(bg_out))  # one squeezed token for all
    # With SQA's result cut off, the background output still depends on the foreground (through MMSA
    # on the bridge) but no longer on any background token.
    handle = mixer.squeeze.proj.register_forward_hook(lambda m, i, o: o.detach())
    mixer(x).flatten(2)[0].t()[bg[0, 0]].sum().backward()
    handle.remove()
    grad = x.grad.flatten(2)[0].abs().sum(0)  # HW
    assert grad[fg[0]].sum() > 0 and grad[bg[0]].sum() == 0
    # Foreground outputs see the background only through the bridge as well.
    x.grad = None
    handle = mixer.squeeze.proj.register_forward_hook(lambda m, i, o: o.detach())
    mixer(x).flatten(2)[0].t()[fg[0, 0]].sum().backward()
    handle.remove()
    assert x.grad.flatten(2)[0].abs().sum(0)[bg[0]].sum() == 0
