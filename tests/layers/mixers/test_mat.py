"""MAT attention: a token outside a window influences it only through the abstract tokens."""

from __future__ import annotations

import torch

from boxer.layers import create_mixer


def _grad_outside_window(mixer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    mixer(x)[..., :4, :4].sum().backward()  # the outputs of the top-left 4x4 window
    grad = x.grad.abs().sum(1)[0]
    return grad[:4, :4].sum(), grad.sum() - grad[:4, :4].sum()


def test_other_windows_reach_a_window_only_through_abstract_tokens() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("mat", 8, num_heads=2, window_size=4)
    x = torch.randn(1, 8, 8, 12)
    inside, outside = _grad_outside_window(mixer, x)
    assert inside > 0 and outside > 0  # cross-window information flows
    handle = mixer.mix.register_forward_hook(lambda m, i, out: out.detach())  # cut the abstract path
    inside, outside = _grad_outside_window(mixer, x)
    handle.remove()
    assert inside > 0 and outside == 0


def test_no_roll_and_padding_is_never_attended() -> None:
    """A 6x6 map in 4x4 windows: outputs do not depend on what the padding would hold."""
    torch.manual_seed(0)
    mixer = create_mixer("mat", 8, num_heads=2, window_size=4).eval()
    x = torch.randn(1, 8, 6, 6)
    out = mixer(x)
    big = torch.nn.functional.pad(x, (0, 2, 0, 2), value=3.0)  # real tokens where padding was
    assert not torch.allclose(mixer(big)[..., :6, :6], out)
    src = open(__import__("boxer.layers.mixers.mat", fromlist=["x"]).__file__).read()
    assert "torch.roll" not in src.replace("without `torch.roll`", "")
