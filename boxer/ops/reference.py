"""Pure-PyTorch reference of box-attention (BoxeR, Nguyen et al., CVPR 2022, spec section 1.2).

One `grid_sample` per level (bilinear, zero padding, align_corners=False), as in the official
test `tests/box_attn_test.py`. Always available; fast paths are checked against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def grid_offsets(m: int, *, device=None, dtype=torch.float32) -> Tensor:
    """Cell-centre offsets u_k = (k + 1/2)/m - 1/2 of an m-cell grid spanning [-1/2, 1/2]. Tensor[m]."""
    return (torch.arange(m, device=device, dtype=dtype) + 0.5) / m - 0.5


def sampling_locations(boxes: Tensor, m: int, angles: Tensor | None = None) -> Tensor:
    """Grid points of each box, normalised to [0, 1] of the level map.

    Args:
        boxes: Tensor[..., 4], (cx, cy, w, h).
        m: grid side.
        angles: Tensor[...] in radians, or None; rotates the centred offsets about the centre.

    Returns:
        Tensor[..., m, m, 2] of (x, y), rows = y, columns = x.
    """
    u = grid_offsets(m, device=boxes.device, dtype=boxes.dtype)
    cx, cy, w, h = (boxes[..., i, None, None] for i in range(4))  # each [..., 1, 1]
    dx = u[None, :] * w  # [..., 1, m] -> column offsets
    dy = u[:, None] * h  # [..., m, 1] -> row offsets
    dx, dy = torch.broadcast_tensors(dx, dy)  # [..., m, m]
    if angles is not None:
        cos, sin = torch.cos(angles)[..., None, None], torch.sin(angles)[..., None, None]
        dx, dy = cos * dx - sin * dy, sin * dx + cos * dy
    return torch.stack((cx + dx, cy + dy), dim=-1)


def box_attention_reference(
    value: Tensor, spatial_shapes: Tensor, boxes: Tensor, weights: Tensor, *, angles: Tensor | None = None
) -> Tensor:
    """Box-attention by per-level grid_sample; the contract of `boxer.ops.box_attention`.

    Returns Tensor[B, Q, H*D] in value's dtype (computed in at least float32).
    """
    B, S, H, D = value.shape
    _, Q, _, L, m, _ = weights.shape
    out_dtype = value.dtype
    work = torch.promote_types(value.dtype, torch.float32)
    value, boxes, weights = value.to(work), boxes.to(work), weights.to(work)
    angles = angles.to(work) if angles is not None else None
    loc = sampling_locations(boxes, m, angles)  # B, Q, H, L, m, m, 2
    grid = (2 * loc - 1).permute(0, 2, 3, 1, 4, 5, 6).reshape(B * H, L, Q, m * m, 2)
    w = weights.permute(0, 2, 3, 1, 4, 5).reshape(B * H, L, 1, Q, m * m)
    out = value.new_zeros(B * H, D, Q)
    start = 0
    for lvl, (h_l, w_l) in enumerate(spatial_shapes.tolist()):
        v = value[:, start : start + h_l * w_l].permute(0, 2, 3, 1).reshape(B * H, D, h_l, w_l)
        start += h_l * w_l
        sampled = F.grid_sample(v, grid[:, lvl], mode="bilinear", padding_mode="zeros", align_corners=False)
        out = out + (sampled * w[:, lvl]).sum(-1)  # B*H, D, Q
    return out.view(B, H, D, Q).permute(0, 3, 1, 2).reshape(B, Q, H * D).to(out_dtype)
