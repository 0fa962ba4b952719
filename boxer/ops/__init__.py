"""Functional ops. `box_attention` is the public entry point (see its docstring for the contract)."""

from __future__ import annotations

from torch import Tensor

from boxer.ops.reference import box_attention_reference


def box_attention(
    value: Tensor, spatial_shapes: Tensor, boxes: Tensor, weights: Tensor, *, angles: Tensor | None = None
) -> Tensor:
    """Multi-scale box-attention.

    Args:
        value: Tensor[B, S, H, D], levels flattened level-major then row-major, S = sum H_l*W_l.
        spatial_shapes: LongTensor[L, 2] of (H_l, W_l).
        boxes: Tensor[B, Q, H, L, 4], (cx, cy, w, h) normalised to [0, 1] of each level's map.
        weights: Tensor[B, Q, H, L, m, m], rows = y, columns = x.
        angles: optional Tensor[B, Q, H, L], radians; rotates the grid about the box centre.

    Returns:
        Tensor[B, Q, H*D].
    """
    return box_attention_reference(value, spatial_shapes, boxes, weights, angles=angles)
