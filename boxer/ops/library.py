"""The shared core op: weighted bilinear sampling at given locations, dispatched to a backend."""

from __future__ import annotations

from torch import Tensor

from boxer.ops.reference import core_reference


def box_attention_core(
    value: Tensor, shapes: list[tuple[int, int]], loc: Tensor, attn: Tensor, *, sum_points: bool, backend: str
) -> Tensor:
    """Tensor[B, Q, H, D] (sum_points) or Tensor[B, Q, H, P, D] from value [B, S, H, D],
    loc [B, Q, H, L, P, 2] and attn [B, Q, H, L, P]."""
    return core_reference(value, shapes, loc, attn, sum_points=sum_points)
