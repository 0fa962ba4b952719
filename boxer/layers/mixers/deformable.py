"""Deformable attention, DAT-style (Xia et al., "Vision Transformer with Deformable Attention", CVPR 2022),
the "(e) deformable attention" pattern of the efficient-ViT deck (docs/zoo.md, "The efficient-ViT deck
beside ours").

Reference points form a grid with one point per `stride` x `stride` cell (at the cell centres). An
offset network reads the queries (depthwise k x k conv with the grid's stride, GELU, 1x1 conv to two
channels per offset group) and moves each reference point by at most `offset_range` cells (tanh).
Keys and values are projected from the features sampled bilinearly at the moved points; every query
attends over all sampled points (global attention over ceil(H/r) * ceil(W/r) keys).

What is chosen where DAT offers options: offset groups = 1 by default (`groups`); no relative
position bias (DAT interpolates one); sampling with `torch.nn.functional.grid_sample` (bilinear,
`align_corners=False`, zeros outside the map). boxer's `box_attention` op does not fit here: it
samples an m x m grid inside each box and returns the attention-weighted sum of the samples, while
DAT needs the sampled features themselves, one free point per key, to project into keys and values.
With zero offsets and an even map, the sampled keys are exactly the 2x2 average pool of the input
(stride 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, tokens_to_map


def reference_points(height: int, width: int, stride: int, like: Tensor) -> Tensor:
    """Cell centres of a stride grid over an H x W map (a partial last cell: its own centre),
    normalised to [-1, 1] as grid_sample expects.

    Returns Tensor[ceil(H/r), ceil(W/r), 2] in (x, y) order.
    """
    centres = []
    for size in (height, width):
        start = torch.arange(0, size, stride, device=like.device, dtype=like.dtype)
        centres.append((start + (start + stride).clamp(max=size)) / (2 * size))  # a partial last cell
    grid_y, grid_x = torch.meshgrid(*centres, indexing="ij")
    return torch.stack((grid_x, grid_y), -1) * 2 - 1


class DeformableAttention(nn.Module):
    """Queries attend over features sampled at learnt offsets from a reference grid.

    Args:
        dim: channels.
        num_heads: attention heads.
        stride: reference grid stride r (keys: ceil(H/r) x ceil(W/r)).
        offset_range: largest offset, in grid cells.
        groups: offset groups (each moves its own points for dim // groups channels).
        kernel_size: the offset network's depthwise kernel side (odd).
        feat_size: unused (accepted by every mixer).
        qkv_bias: bias in the q/k/v projections.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        stride: int = 2,
        offset_range: float = 2.0,
        groups: int = 1,
        kernel_size: int = 5,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if stride < 1 or dim % groups or kernel_size % 2 == 0:
            raise ValueError(
                f"deformable attention: need stride >= 1, dim divisible by groups and an odd kernel; "
                f"got stride={stride}, groups={groups}, kernel_size={kernel_size}"
            )
        self.stride, self.offset_range, self.groups = stride, offset_range, groups
        self.core = AttentionCore(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        gc = dim // groups
        self.offset = nn.Sequential(
            nn.Conv2d(gc, gc, kernel_size, stride=stride, padding=kernel_size // 2, groups=gc),
            nn.GELU(),
            nn.Conv2d(gc, 2, 1, bias=False),
        )

    def sample(self, x: Tensor, queries: Tensor) -> Tensor:
        """Features at the moved reference points.

        Args:
            x: Tensor[B, C, H, W], the map to sample.
            queries: Tensor[B, C, H, W], the query map the offsets are read from.

        Returns:
            Tensor[B, C, ceil(H/r), ceil(W/r)].
        """
        B, C, H, W = x.shape
        g = self.groups
        offsets = self.offset(queries.reshape(B * g, C // g, H, W)).tanh()  # B*g, 2, Hr, Wr (x, y)
        cell = offsets.new_tensor([2 * self.stride / W, 2 * self.stride / H]).view(1, 2, 1, 1)
        points = reference_points(H, W, self.stride, x) + (offsets * cell * self.offset_range).permute(
            0, 2, 3, 1
        )
        sampled = F.grid_sample(
            x.reshape(B * g, C // g, H, W), points, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # B*g, C/g, Hr, Wr
        return sampled.view(B, C, *sampled.shape[-2:])

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        H, W = x.shape[-2:]
        q = self.core.project_q(map_to_tokens(x))  # B, h, HW, d
        keys = self.sample(x, tokens_to_map(self.core.merge_heads(q), H, W))  # B, C, Hr, Wr
        k, v = self.core.project_kv(map_to_tokens(keys))  # B, h, HrWr, d
        out = self.core.attend(q, k, v)  # B, h, HW, d
        return tokens_to_map(self.core.output(self.core.merge_heads(out)), H, W)
