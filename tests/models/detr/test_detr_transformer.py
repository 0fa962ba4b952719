"""DETR's sine positions (against a per-cell reference, padding invariance) and the transformer."""

from __future__ import annotations

import math

import pytest
import torch

from boxer.models.detr import DETRTransformer, sine_position_2d


def _reference(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """The paper's formula cell by cell: y block then x block, sin on even and cos on odd features."""
    half = dim // 2
    out = torch.zeros(h, w, dim, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            for block, v in enumerate(((i + 1) / h * 2 * math.pi, (j + 1) / w * 2 * math.pi)):
                for k in range(half):
                    arg = v / temperature ** (2 * (k // 2) / half)
                    out[i, j, block * half + k] = math.sin(arg) if k % 2 == 0 else math.cos(arg)
    return out


def test_sine_position_matches_the_formula():
    pos = sine_position_2d(torch.zeros(1, 3, 5, dtype=torch.bool), 16)
    assert pos.shape == (1, 3, 5, 16) and pos.dtype == torch.float32
    torch.testing.assert_close(pos[0].double(), _reference(3, 5, 16), atol=1e-5, rtol=0)


def test_sine_position_ignores_padding():
    """An image padded bottom-right gets the embedding of the same image unpadded."""
    mask = torch.zeros(2, 8, 10, dtype=torch.bool)
    mask[1, 5:, :] = True
    mask[1, :, 7:] = True
    pos = sine_position_2d(mask, 32)
    alone = sine_position_2d(torch.zeros(1, 5, 7, dtype=torch.bool), 32)
    torch.testing.assert_close(pos[1, :5, :7], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(pos[0], sine_position_2d(torch.zeros_like(mask[:1]), 32)[0])
    assert torch.isfinite(pos).all()


@pytest.fixture
def transformer() -> DETRTransformer:
    torch.manual_seed(0)
    return DETRTransformer(32, num_heads=4, enc_layers=2, dec_layers=3, ffn_dim=64).eval()


def test_transformer_returns_every_decoder_layer(transformer):
    out = transformer(torch.randn(2, 32, 3, 4), None, torch.randn(5, 32))
    assert out.shape == (3, 2, 5, 32) and torch.isfinite(out).all()
    # every layer went through the shared final LayerNorm
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 2, 5), atol=1e-4, rtol=0)


def test_padded_tokens_do_not_change_the_output(transformer):
    """Positions and key padding masks make padding invisible: garbage there changes nothing."""
    queries = torch.randn(5, 32)
    src = torch.randn(1, 32, 3, 4)
    padded = torch.randn(1, 32, 5, 6) * 10
    padded[..., :3, :4] = src
    mask = torch.ones(1, 5, 6, dtype=torch.bool)
    mask[:, :3, :4] = False
    torch.testing.assert_close(transformer(padded, mask, queries), transformer(src, None, queries))


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="divisible"):
        DETRTransformer(30, num_heads=4)
    with pytest.raises(ValueError, match="dec_layers"):
        DETRTransformer(32, num_heads=4, dec_layers=0)
