"""Instance-attention module (BoxeR, Nguyen et al., CVPR 2022; docs/ops.md, `instance_attention`).

Same where-to-attend as `BoxAttention` (offset Linear `linear_box`, 1/8 rule, ReLU, init), a
14 x 14 grid, and coarse attention logits: one 2 x 2 block per head and level (`linear_attention`
maps d -> M*T*4). The op `boxer.ops.instance_attention` normalises them twice: over all T*196
points per head for the output, over the T levels per cell for the mask features. Both go
through the same `out_proj`, as in the official code.
"""

from __future__ import annotations

from torch import Tensor

from boxer.layers.box_attention import WindowAttentionBase, common_dtype
from boxer.ops import instance_attention


class InstanceAttention(WindowAttentionBase):
    """Box-attention that also returns per-cell mask features.

    Args:
        dim: model width d.
        num_heads: attention heads M (8).
        num_levels: feature levels T (4).
        grid_size: side of the sampling grid, even (14).
        with_rotation: learn an angle per head and level.
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
        grid_size: int = 14,
        with_rotation: bool = False,
        offset_scale: float = 0.125,
        angle_scale: float = 1 / 16,
        backend: str | None = None,
    ) -> None:
        if grid_size < 2 or grid_size % 2:
            raise ValueError(f"grid_size: expected an even grid side >= 2, got {grid_size}")
        super().__init__(
            dim,
            num_heads=num_heads,
            num_levels=num_levels,
            grid_size=grid_size,
            num_logits=4,
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
        return_mask_features: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Arguments as `BoxAttention.forward`; `return_mask_features=False` skips the mask path.

        Returns:
            out: Tensor[B, Q, d].
            mask_features: Tensor[B, Q, g, g, d] (rows = y) after out_proj, or None.
        """
        B, Q, _ = query.shape
        v = self.project_value(value, padding_mask)  # B, S, H, D
        boxes, angles = self.windows(query, ref_windows, valid_ratios)  # B, Q, H, L, 4
        logits = self.linear_attention(query).view(B, Q, self.num_heads, self.num_levels, 2, 2)
        v, boxes, logits, angles = common_dtype(v, boxes, logits, angles)
        out, feats = instance_attention(
            v,
            spatial_shapes,
            boxes,
            logits,
            angles=angles,
            grid_size=self.grid_size,
            return_mask_features=return_mask_features,
            backend=self.backend,
        )
        return self.out_proj(out), (self.out_proj(feats) if feats is not None else None)
