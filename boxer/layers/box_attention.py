"""Box-attention module (BoxeR, Nguyen et al., CVPR 2022; docs/ops.md, "Modules").

`BoxAttention` owns the projections around the functional op `boxer.ops.box_attention`: the value
projection (padded tokens zeroed), the attention-logit Linear (softmax per head over all
levels x grid cells), the window-offset Linear `linear_box` (the "where to attend" transform with
the fixed 1/8 rule and a ReLU on the size; its parameter names contain `linear_box`, which the
engine trains at 0.1x LR), and the output projection. Init as the official code: logits W=0, b=0;
offsets W=0, b~U(0,1); value/output xavier_uniform with zero bias.

Rotation (the paper's BoxeR-3D; docs/ops.md, `angles`): with `with_rotation=True` the offset Linear predicts
a fifth number per head and level, the angle in turns θ = (θ̂_ref + δθ/16)·2π, where θ̂_ref is the reference
window's fifth component (0 when it has none). Without `with_rotation`, a reference window's fifth component
is used as a fixed angle (θ̂·2π, the encoder's per-head angles). Deviation: with angles, valid ratios scale
the box centre and size before the rotation (exact when ρ_w = ρ_h; the official 3D model has no padding,
hence no valid ratios).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boxer.ops import box_attention


def transform_windows(
    ref_windows: Tensor, offsets: Tensor, *, offset_scale: float = 0.125, angle_scale: float = 1 / 16
) -> tuple[Tensor, Tensor | None]:
    """Applies the where-to-attend offsets to reference windows (and, with rotation, angles).

    Args:
        ref_windows: Tensor[B, Q, 1 or H, 1, C], C = 4 (cx, cy, w, h) or 5 (+ angle in turns, [0, 1]).
        offsets: Tensor[B, Q, H, L, K], K = 4 (dx, dy, dw, dh) or 5 (+ d_angle).
        offset_scale: translation and size factor (1/8 in BoxeR).
        angle_scale: angle factor in turns (1/16 in BoxeR-3D).

    Returns:
        boxes: Tensor[B, Q, H, L, 4], (cx, cy, w, h) with w, h >= 0 (ReLU).
        angles: Tensor[B, Q, H, L] in radians, or None.
    """
    wh = ref_windows[..., 2:4]
    centre = ref_windows[..., :2] + offsets[..., :2] * wh * offset_scale
    size = F.relu(wh + offsets[..., 2:4] * wh * offset_scale)
    boxes = torch.cat(torch.broadcast_tensors(centre, size), dim=-1)  # B, Q, H, L, 4
    turns = ref_windows[..., 4] if ref_windows.shape[-1] == 5 else None
    if offsets.shape[-1] == 5:
        turns = offsets[..., 4] * angle_scale + (turns if turns is not None else 0.0)
    if turns is None:
        return boxes, None
    return boxes, (turns * (2 * math.pi)).expand(boxes.shape[:-1])


def apply_valid_ratios(boxes: Tensor, valid_ratios: Tensor | None) -> Tensor:
    """Maps boxes normalised to the valid image onto each level's padded map.

    Args:
        boxes: Tensor[B, Q, H, L, 4] (cx, cy, w, h) in valid-normalised coordinates.
        valid_ratios: Tensor[B, L, 2] of (valid_w / W_l, valid_h / H_l), or None (no padding).
    """
    if valid_ratios is None:
        return boxes
    ratios = valid_ratios[:, None, None].repeat(1, 1, 1, 1, 2)  # B, 1, 1, L, 4 = (rw, rh, rw, rh)
    return boxes * ratios


class WindowAttentionBase(nn.Module):
    """Projections and window transform shared by `BoxAttention` and `InstanceAttention`.

    Args:
        dim: model width d (divisible by num_heads).
        num_heads: attention heads M.
        num_levels: feature levels T.
        grid_size: side m of each head's sampling grid.
        num_logits: attention logits per head and level.
        with_rotation: predict an angle offset per head and level (the paper's rotated boxes).
        offset_scale: factor of the window offsets (1/8).
        angle_scale: factor of the angle offset in turns (1/16).
        backend: forced op backend (None: `boxer.ops` dispatch).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        num_levels: int,
        grid_size: int,
        num_logits: int,
        with_rotation: bool = False,
        offset_scale: float = 0.125,
        angle_scale: float = 1 / 16,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim: {dim} is not divisible by num_heads={num_heads}")
        self.dim, self.num_heads, self.num_levels, self.grid_size = dim, num_heads, num_levels, grid_size
        self.with_rotation, self.offset_scale, self.angle_scale = with_rotation, offset_scale, angle_scale
        self.backend = backend
        self.value_proj = nn.Linear(dim, dim)
        self.linear_attention = nn.Linear(dim, num_heads * num_levels * num_logits)
        self.linear_box = nn.Linear(dim, num_heads * num_levels * (5 if with_rotation else 4))
        self.out_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As the official code (docs/ops.md): logits W=0, b=0; offsets W=0, b~U(0,1); value/out
        xavier_uniform, b=0."""
        nn.init.zeros_(self.linear_attention.weight)
        nn.init.zeros_(self.linear_attention.bias)
        nn.init.zeros_(self.linear_box.weight)
        nn.init.uniform_(self.linear_box.bias, 0.0, 1.0)
        for proj in (self.value_proj, self.out_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, num_levels={self.num_levels}, "
            f"grid_size={self.grid_size}, with_rotation={self.with_rotation}"
        )

    def project_value(self, value: Tensor, padding_mask: Tensor | None) -> Tensor:
        """Tensor[B, S, d] -> Tensor[B, S, H, D], padded tokens (mask True) zeroed."""
        v = self.value_proj(value)
        if padding_mask is not None:
            if padding_mask.shape != value.shape[:2]:
                raise ValueError(
                    f"padding_mask: expected shape {tuple(value.shape[:2])}, got {tuple(padding_mask.shape)}"
                )
            v = v.masked_fill(padding_mask[..., None], 0.0)
        return v.view(*value.shape[:2], self.num_heads, self.dim // self.num_heads)  # B, S, H, D

    def windows(
        self, query: Tensor, ref_windows: Tensor, valid_ratios: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Boxes Tensor[B, Q, H, L, 4] normalised to each padded level map, and angles or None."""
        B, Q, _ = query.shape
        H, L = self.num_heads, self.num_levels
        if ref_windows.dim() == 3:
            ref = ref_windows[:, :, None, None]  # B, Q, 1, 1, C
        elif ref_windows.dim() == 4 and ref_windows.shape[2] == H:
            ref = ref_windows[:, :, :, None]  # B, Q, H, 1, C
        else:
            ref = None
        if ref is None or ref.shape[:2] != (B, Q) or ref.shape[-1] not in (4, 5):
            raise ValueError(
                f"ref_windows: expected Tensor[B={B}, Q={Q}, 4|5] or [B, Q, H={H}, 4|5], "
                f"got {tuple(ref_windows.shape)}"
            )
        offsets = self.linear_box(query).view(B, Q, H, L, 5 if self.with_rotation else 4)  # B, Q, H, L, K
        boxes, angles = transform_windows(
            ref, offsets, offset_scale=self.offset_scale, angle_scale=self.angle_scale
        )
        if valid_ratios is not None and tuple(valid_ratios.shape) != (B, L, 2):
            raise ValueError(
                f"valid_ratios: expected shape [B={B}, L={L}, 2], got {tuple(valid_ratios.shape)}"
            )
        return apply_valid_ratios(boxes, valid_ratios), angles


def common_dtype(*tensors: Tensor | None) -> list[Tensor | None]:
    """Casts the op's inputs to one dtype (float32 under autocast: Linear bf16 + softmax fp32)."""
    dtype = None
    for t in tensors:
        if t is not None:
            dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    return [t.to(dtype) if t is not None else None for t in tensors]


class BoxAttention(WindowAttentionBase):
    """Multi-head, multi-scale box-attention with learnt window transforms.

    Args:
        dim: model width d.
        num_heads: attention heads M (8).
        num_levels: feature levels T (4).
        grid_size: m, an m x m grid of cell centres per head and level (2).
        with_rotation: learn an angle per head and level (BoxeR-3D decoder).
        offset_scale: window offset factor (1/8).
        angle_scale: angle offset factor in turns (1/16).
        backend: forced op backend (None: `boxer.ops` dispatch).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        num_levels: int = 4,
        grid_size: int = 2,
        with_rotation: bool = False,
        offset_scale: float = 0.125,
        angle_scale: float = 1 / 16,
        backend: str | None = None,
    ) -> None:
        super().__init__(
            dim,
            num_heads=num_heads,
            num_levels=num_levels,
            grid_size=grid_size,
            num_logits=grid_size * grid_size,
            with_rotation=with_rotation,
            offset_scale=offset_scale,
            angle_scale=angle_scale,
            backend=backend,
        )

    def forward(
        self,
        query: Tensor,
        value: Tensor,
        spatial_shapes: Tensor,
        ref_windows: Tensor,
        *,
        valid_ratios: Tensor | None = None,
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Attends from each query to its transformed windows.

        Args:
            query: Tensor[B, Q, d], content + positional embedding.
            value: Tensor[B, S, d], flattened multi-level features (level-major, row-major).
            spatial_shapes: LongTensor[L, 2] of (H_l, W_l).
            ref_windows: Tensor[B, Q, 4] or per head Tensor[B, Q, H, 4], (cx, cy, w, h)
                normalised to the valid (unpadded) image; a 5th component is an angle in turns.
            valid_ratios: Tensor[B, L, 2] of (valid_w / W_l, valid_h / H_l), or None.
            padding_mask: Tensor[B, S] bool, True = padding, or None.

        Returns:
            Tensor[B, Q, d].
        """
        B, Q, _ = query.shape
        H, L, m = self.num_heads, self.num_levels, self.grid_size
        v = self.project_value(value, padding_mask)  # B, S, H, D
        boxes, angles = self.windows(query, ref_windows, valid_ratios)  # B, Q, H, L, 4
        logits = self.linear_attention(query).view(B, Q, H, L * m * m)
        weights = logits.softmax(dim=-1).view(B, Q, H, L, m, m)
        v, boxes, weights, angles = common_dtype(v, boxes, weights, angles)
        out = box_attention(v, spatial_shapes, boxes, weights, angles=angles, backend=self.backend)
        return self.out_proj(out)  # B, Q, d
