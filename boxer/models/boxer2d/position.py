"""The "fixed_box" positional embedding of BoxeR-2D (BoxeR, Nguyen et al., CVPR 2022;
docs/boxer2d.md, "Files"): pos = S(cx, cy) + S(w, h).

Every encoder token is embedded by its own reference window (its centre and a size of 4 cells of
its level), and every decoder query by its proposal window. There is no learned level embedding:
levels differ only through the size term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sine_embedding(xy: Tensor, dim: int, *, temperature: float = 10000.0) -> Tensor:
    """Sine embedding S of two coordinates, `dim / 2` features each, x block then y block.

    Feature k of a coordinate v is v * 2pi / temperature^(2 floor(k/2) / (dim/2)), sine on even k and
    cosine on odd k (interleaved).

    Args:
        xy: Tensor[..., 2] of coordinates, normally in [0, 1].
        dim: output width (divisible by 4).
        temperature: frequency base.

    Returns:
        Tensor[..., dim] in xy's dtype (computed in float32).
    """
    half = dim // 2
    k = torch.arange(half, device=xy.device, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)  # half
    v = xy.float()[..., None] * (2 * math.pi) / freq  # ..., 2, half
    emb = torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()), dim=-1).flatten(-2)  # ..., 2, half
    return emb.flatten(-2).to(xy.dtype)  # ..., dim


def box_position_embedding(boxes: Tensor, dim: int) -> Tensor:
    """pos = S(cx, cy) + S(w, h) of windows `boxes: Tensor[..., 4]` (cx, cy, w, h) -> Tensor[..., dim]."""
    return sine_embedding(boxes[..., :2], dim) + sine_embedding(boxes[..., 2:], dim)
