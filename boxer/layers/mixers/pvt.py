"""PVT spatial-reduction attention (SRA): queries at full resolution, keys and values from a map
downsampled by a strided `sr_ratio` x `sr_ratio` conv and LayerNorm.

Wang et al., "Pyramid Vision Transformer", ICCV 2021 (v1). Cost falls from (HW)^2 to (HW)^2/R^2.
Deviation: a map whose sides are not multiples of `sr_ratio` is zero-padded before the reduction
(PVT's strided conv drops the remainder), so every token is seen as a key and any H, W works.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, tokens_to_map


class SpatialReductionAttention(nn.Module):
    """Global attention with keys/values from a spatially reduced map.

    Args:
        dim: channels.
        num_heads: attention heads.
        sr_ratio: reduction factor R of the key/value map (1 = plain global attention).
        feat_size: unused (accepted by every mixer).
        qkv_bias: bias in the q/k/v projection.
        attn_drop: attention dropout.
        proj_drop: output dropout.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        sr_ratio: int = 2,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if sr_ratio < 1:
            raise ValueError(f"spatial-reduction attention: sr_ratio must be >= 1, got {sr_ratio}")
        self.sr_ratio = sr_ratio
        self.core = AttentionCore(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop
        )
        self.reduce = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio) if sr_ratio > 1 else None
        self.norm = nn.LayerNorm(dim) if sr_ratio > 1 else None

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        _, _, height, width = x.shape
        q = self.core.project_q(map_to_tokens(x))  # B, h, HW, d
        if self.reduce is not None:
            r = self.sr_ratio
            reduced = self.reduce(F.pad(x, (0, (-width) % r, 0, (-height) % r)))  # B, C, H/R, W/R
            k, v = self.core.project_kv(self.norm(map_to_tokens(reduced)))  # B, h, HW/R^2, d
        else:
            k, v = self.core.project_kv(map_to_tokens(x))
        out = self.core.attend(q, k, v)  # B, h, HW, d
        return tokens_to_map(self.core.output(self.core.merge_heads(out)), height, width)
