"""Position terms added to attention logits on a 2D token grid.

- `RelativeLogits2d`: BoTNet's split relative encoding (Srinivas et al., 2021, after Bello et al.,
  "Attention Augmented Convolutional Networks"): logit(q_i, k_j) += q_i . (R_h[y_j - y_i] +
  R_w[x_j - x_i]), with separate height and width tables.
- `AbsoluteLogits2d`: the absolute-position ablation of BoTNet (Srinivas et al., CVPR
  2021; docs/zoo.md): logit(q_i, k_j) += q_i .
  (P_h[y_j] + P_w[x_j]).
- `relative_position_index`: Swin's index into a (2Wh-1)(2Ww-1) table of per-head biases.

Tables are sized from a nominal feature size. Deviation from BoTNet/timm (which require exactly
that size): a smaller map uses the central part of a relative table; a larger map (or any other size
for an absolute table) linearly interpolates the table, so one model runs on any input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn


def _resize_rows(table: Tensor, rows: int) -> Tensor:
    """Linear interpolation of Tensor[R, D] to Tensor[rows, D] (align_corners, keeps the ends)."""
    if table.shape[0] == rows:
        return table
    return F.interpolate(table.t()[None], size=rows, mode="linear", align_corners=True)[0].t()


def relative_table(table: Tensor, size: int) -> Tensor:
    """Rows of a (2S-1)-row relative table for offsets -(size-1)..size-1: Tensor[2*size-1, D]."""
    extent = (table.shape[0] + 1) // 2
    if size <= extent:
        return table[extent - size : extent + size - 1]
    return _resize_rows(table, 2 * size - 1)


def relative_offsets(size: int, device=None) -> Tensor:
    """LongTensor[size, size]: (key - query) + size - 1, the row of a (2*size-1) relative table."""
    pos = torch.arange(size, device=device)
    return pos[None, :] - pos[:, None] + size - 1


class RelativeLogits2d(nn.Module):
    """Split 2D relative position logits (BoTNet).

    Args:
        head_dim: channels per head (the size of each table row).
        feat_size: nominal (H, W) the tables are sized for (2H-1 and 2W-1 rows).
        scale: std of the initial tables (timm uses head_dim ** -0.5).
    """

    def __init__(self, head_dim: int, feat_size: tuple[int, int], *, scale: float | None = None) -> None:
        super().__init__()
        h, w = feat_size
        std = scale if scale is not None else head_dim**-0.5
        self.height_rel = nn.Parameter(trunc_normal_(torch.empty(2 * h - 1, head_dim), std=std))
        self.width_rel = nn.Parameter(trunc_normal_(torch.empty(2 * w - 1, head_dim), std=std))

    def forward(self, q: Tensor, height: int, width: int) -> Tensor:
        """q: Tensor[B, h, H*W, d] -> logits Tensor[B, h, H*W, H*W] (query row-major, key row-major)."""
        rel_h = relative_table(self.height_rel, height)[relative_offsets(height, q.device)]  # H, H, d
        rel_w = relative_table(self.width_rel, width)[relative_offsets(width, q.device)]  # W, W, d
        q = q.unflatten(2, (height, width))  # B, h, H, W, d
        logits_h = torch.einsum("bnyxd,ykd->bnyxk", q, rel_h.to(q.dtype))  # B, h, H, W, H(key y)
        logits_w = torch.einsum("bnyxd,xkd->bnyxk", q, rel_w.to(q.dtype))  # B, h, H, W, W(key x)
        logits = logits_h[..., :, None] + logits_w[..., None, :]  # B, h, H, W, Hk, Wk
        return logits.flatten(-2).flatten(2, 3)


class AbsoluteLogits2d(nn.Module):
    """Content-position logits with absolute key positions: q_i . (P_h[y_j] + P_w[x_j]).

    Args:
        head_dim: channels per head.
        feat_size: nominal (H, W); other sizes interpolate the tables.
        scale: std of the initial tables.
    """

    def __init__(self, head_dim: int, feat_size: tuple[int, int], *, scale: float | None = None) -> None:
        super().__init__()
        h, w = feat_size
        std = scale if scale is not None else head_dim**-0.5
        self.height_abs = nn.Parameter(trunc_normal_(torch.empty(h, head_dim), std=std))
        self.width_abs = nn.Parameter(trunc_normal_(torch.empty(w, head_dim), std=std))

    def forward(self, q: Tensor, height: int, width: int) -> Tensor:
        """q: Tensor[B, h, H*W, d] -> logits Tensor[B, h, H*W, H*W]."""
        pos_h = _resize_rows(self.height_abs, height)  # H, d
        pos_w = _resize_rows(self.width_abs, width)  # W, d
        keys = (pos_h[:, None] + pos_w[None, :]).flatten(0, 1)  # H*W, d
        return q @ keys.t().to(q.dtype)


def relative_position_index(
    win_h: int, win_w: int, *, table_h: int | None = None, table_w: int | None = None
):
    """Swin's index: LongTensor[wh*ww, wh*ww] into a (2*table_h-1)*(2*table_w-1) bias table.

    A window smaller than the table's (e.g. a map smaller than the window) indexes its central part.
    """
    table_h, table_w = table_h or win_h, table_w or win_w
    ys, xs = torch.meshgrid(torch.arange(win_h), torch.arange(win_w), indexing="ij")
    coords = torch.stack((ys.flatten(), xs.flatten()))  # 2, N
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N (query - key)
    return (rel[0] + table_h - 1) * (2 * table_w - 1) + (rel[1] + table_w - 1)
