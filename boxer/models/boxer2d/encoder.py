"""BoxeR-2D encoder (BoxeR, Nguyen et al., CVPR 2022; docs/boxer2d.md, "Files"): post-norm layers of
multi-scale box-attention + FFN.

Each token queries with `src + pos` through its own reference window (4 cells of its level,
shared by all heads and levels); values are the tokens without positional embedding. Dropout 0.
"""

from __future__ import annotations

from torch import Tensor, nn

from boxer.layers import BoxAttention
from boxer.layers.checkpointing import run_layer
from boxer.models.boxer2d.blocks import FeedForward


class EncoderLayer(nn.Module):
    """src <- LN(src + BoxAttn(src + pos, src, windows)); src <- LN(src + FFN(src)).

    Args:
        dim: model width.
        num_heads: attention heads.
        num_levels: feature levels.
        ffn_dim: FFN hidden width.
        grid_size: box-attention grid side m.
    """

    def __init__(
        self, dim: int, *, num_heads: int = 8, num_levels: int = 4, ffn_dim: int = 1024, grid_size: int = 2
    ):
        super().__init__()
        self.attn = BoxAttention(dim, num_heads=num_heads, num_levels=num_levels, grid_size=grid_size)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(
        self,
        src: Tensor,
        pos: Tensor,
        spatial_shapes: Tensor,
        windows: Tensor,
        valid_ratios: Tensor,
        padding_mask: Tensor | None,
    ) -> Tensor:
        """src, pos: Tensor[B, S, d]; windows: Tensor[B, S, 4] valid-normalised. Returns Tensor[B, S, d]."""
        att = self.attn(
            src + pos, src, spatial_shapes, windows, valid_ratios=valid_ratios, padding_mask=padding_mask
        )
        src = self.norm1(src + att)
        return self.norm2(src + self.ffn(src))


class BoxEncoder(nn.Module):
    """A stack of `num_layers` encoder layers sharing one configuration.

    Args:
        dim: model width.
        num_layers: layers.
        checkpoint: recompute each layer in backward instead of saving its activations (training).
        kwargs: `EncoderLayer` keywords (num_heads, num_levels, ffn_dim, grid_size).
    """

    def __init__(self, dim: int, *, num_layers: int = 6, checkpoint: bool = False, **kwargs) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.layers = nn.ModuleList(EncoderLayer(dim, **kwargs) for _ in range(num_layers))

    def forward(
        self,
        src: Tensor,
        pos: Tensor,
        spatial_shapes: Tensor,
        windows: Tensor,
        valid_ratios: Tensor,
        padding_mask: Tensor | None,
    ) -> Tensor:
        for layer in self.layers:
            args = (src, pos, spatial_shapes, windows, valid_ratios, padding_mask)
            src = run_layer(layer, *args, checkpointed=self.checkpoint)
        return src  # B, S, d
