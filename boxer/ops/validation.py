"""Cheap argument checks for the box-attention ops: ValueError naming the bad argument.

Only shapes, dtypes and devices are checked (metadata, no GPU work); `spatial_shapes` is read
with `.tolist()` (it is tiny; on a GPU this is the one unavoidable sync, needed by every backend
to slice the levels).
"""

from __future__ import annotations

import torch
from torch import Tensor

from boxer.ops.geometry import level_shapes

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_tensor(name: str, t, ndim: int, what: str) -> None:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name}: expected a Tensor {what}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {what} ({ndim} dims), got shape {tuple(t.shape)}")


def check_spatial_shapes(spatial_shapes, num_tokens: int) -> list[tuple[int, int]]:
    """Validates spatial_shapes (LongTensor[L, 2]) against S; returns [(H_l, W_l), ...]."""
    _check_tensor("spatial_shapes", spatial_shapes, 2, "LongTensor[L, 2] of (H_l, W_l)")
    if spatial_shapes.dtype != torch.long:
        raise ValueError(f"spatial_shapes: expected dtype torch.int64, got {spatial_shapes.dtype}")
    if spatial_shapes.shape[1] != 2 or spatial_shapes.shape[0] == 0:
        raise ValueError(
            f"spatial_shapes: expected shape [L, 2] with L >= 1, got {tuple(spatial_shapes.shape)}"
        )
    shapes = level_shapes(spatial_shapes)
    if any(h <= 0 or w <= 0 for h, w in shapes):
        raise ValueError(f"spatial_shapes: every H_l and W_l must be positive, got {shapes}")
    total = sum(h * w for h, w in shapes)
    if total != num_tokens:
        raise ValueError(
            f"value: S = {num_tokens} tokens but spatial_shapes sums to {total} (sum of H_l*W_l)"
        )
    return shapes


def check_inputs(
    value: Tensor,
    spatial_shapes: Tensor,
    boxes: Tensor,
    weights: Tensor,
    angles: Tensor | None,
    *,
    weights_name: str = "weights",
    square_weights: bool = True,
) -> list[tuple[int, int]]:
    """Validates a box-attention call (see `boxer.ops.box_attention`); returns the level shapes."""
    _check_tensor("value", value, 4, "Tensor[B, S, H, D]")
    B, S, H, _ = value.shape
    shapes = check_spatial_shapes(spatial_shapes, S)
    L = len(shapes)
    _check_tensor("boxes", boxes, 5, "Tensor[B, Q, H, L, 4]")
    Q = boxes.shape[1]
    if (boxes.shape[0], boxes.shape[2], boxes.shape[3], boxes.shape[4]) != (B, H, L, 4):
        raise ValueError(f"boxes: expected shape [B={B}, Q, H={H}, L={L}, 4], got {tuple(boxes.shape)}")
    _check_tensor(weights_name, weights, 6, "Tensor[B, Q, H, L, m, m]")
    if tuple(weights.shape[:4]) != (B, Q, H, L):
        raise ValueError(
            f"{weights_name}: expected leading shape [B={B}, Q={Q}, H={H}, L={L}], got {tuple(weights.shape)}"
        )
    if square_weights and (weights.shape[4] != weights.shape[5] or weights.shape[4] < 1):
        raise ValueError(
            f"{weights_name}: expected a square m x m grid (m >= 1), got {tuple(weights.shape[4:])}"
        )
    named = [("value", value), ("boxes", boxes), (weights_name, weights)]
    if angles is not None:
        _check_tensor("angles", angles, 4, "Tensor[B, Q, H, L]")
        if tuple(angles.shape) != (B, Q, H, L):
            raise ValueError(
                f"angles: expected shape [B={B}, Q={Q}, H={H}, L={L}], got {tuple(angles.shape)}"
            )
        named.append(("angles", angles))
    for name, t in named:
        if t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name}: expected a floating dtype, got {t.dtype}")
        if t.dtype != value.dtype:
            raise ValueError(f"{name}: dtype {t.dtype} differs from value's {value.dtype}")
        if t.device != value.device:
            raise ValueError(f"{name}: device {t.device} differs from value's {value.device}")
    return shapes
