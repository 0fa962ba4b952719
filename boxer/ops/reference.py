"""Pure-PyTorch reference of box-attention (BoxeR, Nguyen et al., CVPR 2022;
docs/ops.md, `box_attention`).

One `grid_sample` per level (bilinear, zero padding, align_corners=False), as in the official
test `tests/box_attn_test.py`. Always available; the fast paths are checked against it. It works
on sampling locations and per-point weights (the "core" contract shared by every backend).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from boxer.ops.geometry import grid_offsets, sampling_locations  # noqa: F401  (re-exported)


def core_reference(
    value: Tensor, shapes: list[tuple[int, int]], loc: Tensor, attn: Tensor, *, sum_points: bool = True
) -> Tensor:
    """Weighted bilinear sampling by per-level grid_sample.

    Args:
        value: Tensor[B, S, H, D] (float32 or float64).
        shapes: (H_l, W_l) per level.
        loc: Tensor[B, Q, H, L, P, 2], (x, y) normalised to [0, 1] of each level's map.
        attn: Tensor[B, Q, H, L, P], weight of each sample.
        sum_points: sum over points too (box-attention) or only over levels (mask features).

    Returns:
        Tensor[B, Q, H, D] if sum_points else Tensor[B, Q, H, P, D].
    """
    B, S, H, D = value.shape
    Q, L, P = loc.shape[1], loc.shape[3], loc.shape[4]
    grid = (2 * loc - 1).permute(0, 2, 3, 1, 4, 5).reshape(B * H, L, Q, P, 2)
    w = attn.permute(0, 2, 3, 1, 4).reshape(B * H, L, 1, Q, P)
    out = value.new_zeros((B * H, D, Q) if sum_points else (B * H, D, Q, P))
    start = 0
    for lvl, (h_l, w_l) in enumerate(shapes):
        v = value[:, start : start + h_l * w_l].permute(0, 2, 3, 1).reshape(B * H, D, h_l, w_l)
        start += h_l * w_l
        sampled = F.grid_sample(v, grid[:, lvl], mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled * w[:, lvl]  # B*H, D, Q, P
        out = out + (sampled.sum(-1) if sum_points else sampled)
    if sum_points:
        return out.view(B, H, D, Q).permute(0, 3, 1, 2)  # B, Q, H, D
    return out.view(B, H, D, Q, P).permute(0, 3, 1, 4, 2)  # B, Q, H, P, D


def core_reference_backward(
    grad: Tensor,
    value: Tensor,
    shapes: list[tuple[int, int]],
    loc: Tensor,
    attn: Tensor,
    *,
    sum_points: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (value, loc, attn) of `core_reference`, by the same per-level grid_sample kernels.

    Written out (rather than autograd) so that it can run inside the custom op's backward.
    """
    B, S, H, D = value.shape
    Q, L, P = loc.shape[1], loc.shape[3], loc.shape[4]
    grid = (2 * loc - 1).permute(0, 2, 3, 1, 4, 5).reshape(B * H, L, Q, P, 2)
    w = attn.permute(0, 2, 3, 1, 4).reshape(B * H, L, 1, Q, P)
    if sum_points:
        g = grad.permute(0, 2, 3, 1).reshape(B * H, D, Q, 1)
    else:
        g = grad.permute(0, 2, 4, 1, 3).reshape(B * H, D, Q, P)
    grad_value, grad_grid, grad_w = [], [], []
    start = 0
    for lvl, (h_l, w_l) in enumerate(shapes):
        v = value[:, start : start + h_l * w_l].permute(0, 2, 3, 1).reshape(B * H, D, h_l, w_l)
        start += h_l * w_l
        sampled = F.grid_sample(v, grid[:, lvl], mode="bilinear", padding_mode="zeros", align_corners=False)
        grad_w.append((sampled * g).sum(1))  # B*H, Q, P
        gv, gg = torch.ops.aten.grid_sampler_2d_backward(
            g * w[:, lvl], v, grid[:, lvl], 0, 0, False, [True, True]
        )  # bilinear, zeros, align_corners=False
        grad_value.append(gv.view(B, H, D, h_l * w_l).permute(0, 3, 1, 2))
        grad_grid.append(gg)
    grad_value = torch.cat(grad_value, dim=1)  # B, S, H, D
    grad_loc = 2 * torch.stack(grad_grid, 1).view(B, H, L, Q, P, 2).permute(0, 3, 1, 2, 4, 5)
    grad_attn = torch.stack(grad_w, 1).view(B, H, L, Q, P).permute(0, 3, 1, 2, 4)
    return grad_value, grad_loc.contiguous(), grad_attn.contiguous()
