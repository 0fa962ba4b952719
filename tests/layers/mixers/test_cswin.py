"""Cross-shaped windows: a token sees only its horizontal and vertical stripes."""

from __future__ import annotations

import torch

from boxer.layers import create_mixer


def test_stripe_locality() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("cswin", 8, num_heads=2, stripe_width=2, lepe=False)
    x = torch.randn(1, 8, 7, 9, requires_grad=True)
    mixer(x)[..., 3, 5].sum().backward()  # rows 2-3 form its horizontal stripe, columns 4-5 its vertical
    touched = x.grad.abs().sum(1)[0] > 0
    expected = torch.zeros(7, 9, dtype=torch.bool)
    expected[2:4, :] = True
    expected[:, 4:6] = True
    assert torch.equal(touched, expected)


def test_lepe_adds_the_3x3_neighbourhood() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("cswin", 8, num_heads=2, stripe_width=1)
    x = torch.randn(1, 8, 6, 6, requires_grad=True)
    mixer(x)[..., 3, 3].sum().backward()
    touched = x.grad.abs().sum(1)[0] > 0
    assert touched[2:5, 2:5].all() and not touched[0, 0]
