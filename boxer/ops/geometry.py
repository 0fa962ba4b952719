"""Where box-attention samples: cell-centre grids of (optionally rotated) boxes.

BoxeR (Nguyen et al., CVPR 2022; docs/ops.md, `box_attention`): the m x m sampling points
are the centres of the cells that tile the box, u_k = (k + 1/2)/m - 1/2; with an angle the centred
offsets are rotated by [[cos, -sin], [sin, cos]] about the box centre (the BoxeR-3D form).
Shared by every backend and by instance-attention.
"""

from __future__ import annotations

import torch
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
    if angles is None:  # one fused op: centre + (u_x, u_y) * (w, h)
        grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), dim=-1)  # m, m, 2: (u_j, u_i) at row i, col j
        return torch.addcmul(boxes[..., None, None, :2], boxes[..., None, None, 2:4], grid)
    cx, cy, w, h = (boxes[..., i, None, None] for i in range(4))  # each [..., 1, 1]
    dx = u[None, :] * w  # [..., 1, m] -> column offsets
    dy = u[:, None] * h  # [..., m, 1] -> row offsets
    dx, dy = torch.broadcast_tensors(dx, dy)  # [..., m, m]
    cos, sin = torch.cos(angles)[..., None, None], torch.sin(angles)[..., None, None]
    dx, dy = cos * dx - sin * dy, sin * dx + cos * dy
    return torch.stack((cx + dx, cy + dy), dim=-1)


def spatial_shapes_tensor(pairs, device=None) -> Tensor:
    """LongTensor[L, 2] of (H_l, W_l) that also carries the Python pairs (`level_shapes` reads them).

    Under `torch.export` the pairs are symbolic sizes; reading them back from the tensor would make
    them data-dependent, so the ops take the recorded pairs instead.
    """
    pairs = [(h, w) for h, w in pairs]
    shapes = torch.tensor(pairs, dtype=torch.long, device=device)
    shapes.level_pairs = pairs
    return shapes


def level_shapes(spatial_shapes: Tensor) -> list[tuple[int, int]]:
    """[(H_l, W_l), ...] of a LongTensor[L, 2]: the pairs recorded by `spatial_shapes_tensor`, else read."""
    pairs = getattr(spatial_shapes, "level_pairs", None)
    return list(pairs) if pairs is not None else [(int(h), int(w)) for h, w in spatial_shapes.tolist()]


def level_start_index(spatial_shapes: list[tuple[int, int]]) -> list[int]:
    """Exclusive prefix sum of H_l * W_l: where each level starts in the flattened value."""
    starts, acc = [], 0
    for h, w in spatial_shapes:
        starts.append(acc)
        acc += h * w
    return starts
