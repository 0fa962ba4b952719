"""Box-attention as a token mixer: self-attention over one feature map, each token attending from
its own reference window (BoxeR, Nguyen et al., CVPR 2022, the encoder's use of box-attention).

Every token is a query whose reference window is centred on its own cell, `window_cells` cells wide
and high (BoxeR's encoder uses 4 cells of its level); `boxer.layers.BoxAttention` with one level
learns how to move and resize that window per head and samples an m x m grid in it. Works at any
H, W. Deviation from the BoxeR encoder: the query is the token alone (no sine position embedding
added): position enters only through the reference window.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from boxer.layers.box_attention import BoxAttention
from boxer.layers.mixers.core import map_to_tokens, tokens_to_map


def grid_windows(height: int, width: int, cells: float, *, device=None, dtype=torch.float32) -> Tensor:
    """Reference windows on the token grid: Tensor[H*W, 4] (cx, cy, w, h) normalised to [0, 1]."""
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    w = torch.full_like(cx, cells / width)
    h = torch.full_like(cy, cells / height)
    return torch.stack((cx, cy, w, h), dim=-1).flatten(0, 1)


class BoxAttentionMixer(nn.Module):
    """Single-scale box self-attention.

    Args:
        dim: channels (divisible by num_heads).
        num_heads: attention heads.
        grid_size: side m of each head's sampling grid.
        window_cells: reference window side in cells of the map.
        feat_size: unused (accepted by every mixer).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        grid_size: int = 2,
        window_cells: float = 4.0,
        feat_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.window_cells = window_cells
        self.attn = BoxAttention(dim, num_heads=num_heads, num_levels=1, grid_size=grid_size)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        B, _, height, width = x.shape
        tokens = map_to_tokens(x)  # B, HW, C
        ref = grid_windows(height, width, self.window_cells, device=x.device, dtype=x.dtype)
        shapes = torch.tensor([[height, width]], dtype=torch.long, device=x.device)
        out = self.attn(tokens, tokens, shapes, ref.expand(B, -1, -1))  # B, HW, C
        return tokens_to_map(out, height, width)
