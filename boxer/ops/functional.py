"""Public box-attention and instance-attention ops (BoxeR, Nguyen et al., CVPR 2022).

`box_attention` is the paper's box-attention without the projections (docs/ops.md, `box_attention`);
`instance_attention` is the paper's instance-attention (coarse 2x2 logits, spatial softmax for the output,
level softmax for the mask features). Both turn boxes into sampling locations (`geometry.py`) and hand them
to one shared core, `boxer::box_attention_core` (`library.py`), which dispatches to a backend.
"""

from __future__ import annotations

import torch
from torch import Tensor

from boxer.ops.dispatch import resolve_backend
from boxer.ops.geometry import sampling_locations
from boxer.ops.library import box_attention_core
from boxer.ops.validation import check_inputs


def _prepare(value, boxes, angles, m):
    """Promotes to the compute dtype (>= float32) and builds locations. Returns value, loc."""
    work = torch.promote_types(value.dtype, torch.float32)
    angles = angles.to(work) if angles is not None else None
    loc = sampling_locations(boxes.to(work), m, angles)  # B, Q, H, L, m, m, 2
    return value.to(work), loc.flatten(4, 5)  # B, Q, H, L, P, 2


def box_attention(
    value: Tensor,
    spatial_shapes: Tensor,
    boxes: Tensor,
    weights: Tensor,
    *,
    angles: Tensor | None = None,
    backend: str | None = None,
) -> Tensor:
    """Multi-scale box-attention: weighted bilinear samples of m x m cell-centre grids in boxes.

    Sampling point (i, j) of a box is x = cx + ((j + 1/2)/m - 1/2) w, y = cy + ((i + 1/2)/m - 1/2) h
    (offsets rotated by `angles` when given), sampled bilinearly with zero padding and
    align_corners=False (pixel = x W_l - 1/2), weighted by `weights` and summed over levels and points.

    Args:
        value: Tensor[B, S, H, D], levels flattened level-major then row-major, S = sum H_l*W_l.
        spatial_shapes: LongTensor[L, 2] of (H_l, W_l).
        boxes: Tensor[B, Q, H, L, 4], (cx, cy, w, h) normalised to [0, 1] of each level's (padded) map.
        weights: Tensor[B, Q, H, L, m, m], rows = y, columns = x.
        angles: optional Tensor[B, Q, H, L], radians; rotates the grid about the box centre.
        backend: "auto" (default), "reference", "gather" or "triton"; overrides the
            BOXER_BOX_ATTN_BACKEND environment variable.

    Returns:
        Tensor[B, Q, H*D] in value's dtype (accumulated in at least float32).

    Raises:
        ValueError: a malformed argument (the message names it).
    """
    shapes = check_inputs(value, spatial_shapes, boxes, weights, angles)
    name = resolve_backend(backend, value.device)
    B, _, H, D = value.shape
    Q, m = boxes.shape[1], weights.shape[-1]
    v, loc = _prepare(value, boxes, angles, m)
    attn = weights.to(v.dtype).flatten(4)  # B, Q, H, L, P
    out = box_attention_core(v, shapes, loc, attn, sum_points=True, backend=name)  # B, Q, H, D
    return out.reshape(B, Q, H * D).to(value.dtype)


def expand_coarse(logits: Tensor, grid_size: int) -> Tensor:
    """Nearest-upsamples Tensor[..., 2, 2] to Tensor[..., g, g]: each logit fills a g/2 x g/2 quadrant."""
    r = grid_size // 2
    return logits.repeat_interleave(r, dim=-2).repeat_interleave(r, dim=-1)


def instance_attention(
    value: Tensor,
    spatial_shapes: Tensor,
    boxes: Tensor,
    logits: Tensor,
    *,
    angles: Tensor | None = None,
    grid_size: int = 14,
    return_mask_features: bool = True,
    backend: str | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Instance-attention (docs/ops.md, `instance_attention`): box-attention output plus per-cell mask
    features.

    The coarse logits (one 2 x 2 block per head and level) are repeated over the four
    (g/2 x g/2) quadrants of a g x g grid. A softmax per head over all L*g*g entries weights the
    output; a softmax per head and grid cell over the L levels builds the mask features
    F[b, q, i, j, h] = sum_l level_w[b, q, h, l, i, j] * V_{l,h}(point_{h,l,i,j}).

    Args:
        value: Tensor[B, S, H, D], as for `box_attention`.
        spatial_shapes: LongTensor[L, 2] of (H_l, W_l).
        boxes: Tensor[B, Q, H, L, 4], (cx, cy, w, h) normalised to each level's map.
        logits: Tensor[B, Q, H, L, 2, 2], pre-softmax coarse attention logits (rows = y).
        angles: optional Tensor[B, Q, H, L] in radians.
        grid_size: g, the side of the sampling grid (even; 14 in BoxeR).
        return_mask_features: compute the mask features (only the last decoder layer needs
            them at inference).
        backend: as for `box_attention`.

    Returns:
        (out: Tensor[B, Q, H*D], mask_features: Tensor[B, Q, g, g, H*D] or None), in value's dtype.
    """
    shapes = check_inputs(value, spatial_shapes, boxes, logits, angles, weights_name="logits")
    if tuple(logits.shape[4:]) != (2, 2):
        raise ValueError(
            f"logits: expected a coarse 2 x 2 block per head and level, got {tuple(logits.shape[4:])}"
        )
    if grid_size < 2 or grid_size % 2:
        raise ValueError(f"grid_size: expected an even grid side >= 2, got {grid_size}")
    name = resolve_backend(backend, value.device)
    B, _, H, D = value.shape
    Q, L, g = boxes.shape[1], boxes.shape[3], grid_size
    v, loc = _prepare(value, boxes, angles, g)
    coarse = logits.to(v.dtype)  # B, Q, H, L, 2, 2
    spatial = torch.softmax(coarse.reshape(B, Q, H, L * 4), dim=-1).view_as(coarse) / (g // 2) ** 2
    out = box_attention_core(
        v, shapes, loc, expand_coarse(spatial, g).flatten(4), sum_points=True, backend=name
    )
    out = out.reshape(B, Q, H * D).to(value.dtype)
    if not return_mask_features:
        return out, None
    level = expand_coarse(torch.softmax(coarse, dim=3), g).flatten(4)  # B, Q, H, L, g*g
    feats = box_attention_core(v, shapes, loc, level, sum_points=False, backend=name)  # B, Q, H, g*g, D
    feats = feats.permute(0, 1, 3, 2, 4).reshape(B, Q, g, g, H * D)
    return out, feats.to(value.dtype)
