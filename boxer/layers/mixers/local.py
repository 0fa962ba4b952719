"""Local (sliding-window) self-attention: each query attends to the k x k neighbourhood around it.

The "local attention" of the lecture decks (Parmar et al., Image Transformer, 2018; Ramachandran et
al., "Stand-Alone Self-Attention in Vision Models", 2019; Hu et al., Local Relation Networks, 2019),
with a learned relative position bias per head and neighbourhood offset. Keys beyond the border are
masked (not zero-padded into the softmax), so every query sees only real neighbours. Works at any
H, W. Deviation from SASA: a per-offset scalar bias instead of a relative embedding dotted with q.
Keys and values are gathered with `F.unfold`, so memory grows as k^2 * C * H * W; the k*k logits
per query are computed with einsum (a fused SDPA call on 1-query batches is slower on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, tokens_to_map


class LocalAttention(nn.Module):
    """Sliding-window (neighbourhood) attention.

    Args:
        dim: channels.
        num_heads: attention heads.
        kernel_size: neighbourhood side (odd).
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
        kernel_size: int = 7,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"local attention: kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size = kernel_size
        self.core = AttentionCore(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop
        )
        self.relative_bias = nn.Parameter(trunc_normal_(torch.empty(num_heads, kernel_size**2), std=0.02))

    def _neighbours(self, t: Tensor, height: int, width: int) -> Tensor:
        """Tensor[B, h, HW, d] -> the k*k neighbours of every position, Tensor[B, h, HW, k*k, d]."""
        B, h, _, d = t.shape
        k = self.kernel_size
        cols = F.unfold(
            t.transpose(2, 3).reshape(B, h * d, height, width), k, padding=k // 2
        )  # B, h*d*k*k, HW
        return cols.view(B, h, d, k * k, -1).permute(0, 1, 4, 3, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        _, _, height, width = x.shape
        k = self.kernel_size
        q, key, value = self.core.project_qkv(map_to_tokens(x))  # each B, h, HW, d
        key, value = self._neighbours(key, height, width), self._neighbours(value, height, width)
        inside = F.unfold(x.new_ones(1, 1, height, width), k, padding=k // 2)[0].t() > 0  # HW, k*k
        bias = self.relative_bias[:, None, :].masked_fill(~inside, float("-inf"))  # h, HW, k*k
        logits = torch.einsum("bnqd,bnqkd->bnqk", q * self.core.head_dim**-0.5, key) + bias  # B, h, HW, k*k
        attn = F.dropout(logits.softmax(-1), self.core.attn_drop, self.training)
        out = torch.einsum("bnqk,bnqkd->bnqd", attn, value)  # B, h, HW, d
        return tokens_to_map(self.core.output(self.core.merge_heads(out)), height, width)
