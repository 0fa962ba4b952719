"""Every registered token mixer: shape, finiteness, gradients, odd and even sizes, errors."""

from __future__ import annotations

import pytest
import torch

from boxer.errors import BoxerError
from boxer.layers import create_mixer, list_mixers

DIM, HEADS = 16, 2
SIZES = [(7, 7), (6, 9), (8, 8), (1, 5)]


def _perturb(module: torch.nn.Module) -> None:
    """Moves every parameter off its (possibly zero) init so that all of them can receive gradient."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))


@pytest.mark.parametrize("name", list_mixers())
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_forward_shape_and_finite(name: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    mixer = create_mixer(name, DIM, num_heads=HEADS, feat_size=(7, 7))
    x = torch.randn(2, DIM, *size)
    y = mixer(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", list_mixers())
def test_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    mixer = create_mixer(name, DIM, num_heads=HEADS, feat_size=(6, 6))
    _perturb(mixer)
    x = torch.randn(2, DIM, 6, 6, requires_grad=True)
    mixer(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in mixer.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", list_mixers())
def test_batch_items_are_independent(name: str) -> None:
    mixer = create_mixer(name, DIM, num_heads=HEADS).eval()
    x = torch.randn(3, DIM, 5, 6)
    whole = mixer(x)
    single = torch.cat([mixer(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(whole, single, rtol=1e-4, atol=1e-5)


def test_unknown_mixer_is_a_user_error() -> None:
    with pytest.raises(BoxerError, match="mixer: unknown 'nope'"):
        create_mixer("nope", DIM)


def test_window_without_padding_rejects_a_non_multiple() -> None:
    mixer = create_mixer("window", DIM, num_heads=HEADS, window_size=4, pad=False)
    assert mixer(torch.randn(1, DIM, 8, 12)).shape == (1, DIM, 8, 12)
    with pytest.raises(ValueError, match="window 4x4 does not divide the 8x10 map"):
        mixer(torch.randn(1, DIM, 8, 10))


@pytest.mark.parametrize(
    ("name", "kw", "match"),
    [
        ("mhsa", {"num_heads": 3}, "not divisible by num_heads"),
        ("local", {"kernel_size": 4}, "kernel_size must be odd"),
        ("window", {"window_size": 4, "shift_size": 4}, "shift_size"),
        ("pvt", {"sr_ratio": 0}, "sr_ratio"),
    ],
)
def test_bad_configuration_is_rejected(name: str, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_mixer(name, DIM, **{"num_heads": HEADS, **kw})


def test_qr_ablation_ignores_content_logits() -> None:
    """With content=False only the position term decides the weights: keys do not matter."""
    mixer = create_mixer("mhsa_qr", DIM, num_heads=HEADS, feat_size=4, proj=False).eval()
    with torch.no_grad():
        w_k = mixer.core.qkv.weight[DIM : 2 * DIM]
        w_k.mul_(100)  # scaling keys would change qk^T logits, not q r^T ones
    x = torch.randn(1, DIM, 4, 4)
    ref = create_mixer("mhsa_qr", DIM, num_heads=HEADS, feat_size=4, proj=False).eval()
    ref.load_state_dict(mixer.state_dict())
    with torch.no_grad():
        ref.core.qkv.weight[DIM : 2 * DIM].div_(100)
    torch.testing.assert_close(mixer(x), ref(x))
