"""Local (sliding-window) self-attention: each query attends to the k x k neighbourhood around it.

Local attention as in Parmar et al., Image Transformer, 2018; Ramachandran et
al., "Stand-Alone Self-Attention in Vision Models", 2019; Hu et al., Local Relation Networks, 2019),
with a learned relative position bias per head and neighbourhood offset. Keys beyond the border are
masked (not zero-padded into the softmax), so every query sees only real neighbours. Works at any
H, W. Deviation from SASA: a per-offset scalar bias instead of a relative embedding dotted with q.
Two equivalent paths: up to `dense_max_tokens` tokens, one fused `F.scaled_dot_product_attention`
over all tokens with a banded bias (-inf outside each neighbourhood), fastest for the small maps of
classification; above it, keys and values are gathered with `F.unfold` (memory k^2 * C * H * W,
linear in H * W) and the k*k logits per query computed with einsum.
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
        dense_max_tokens: largest H*W that uses the banded dense path.
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
        dense_max_tokens: int = 1024,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"local attention: kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size, self.dense_max_tokens = kernel_size, dense_max_tokens
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

    def banded_bias(self, height: int, width: int) -> Tensor:
        """Tensor[h, HW, HW]: each query's bias for keys in its k x k neighbourhood, -inf elsewhere."""
        r, k = self.kernel_size // 2, self.kernel_size
        device = self.relative_bias.device
        ys, xs = torch.meshgrid(
            torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
        )
        ys, xs = ys.flatten(), xs.flatten()
        dy, dx = ys[None, :] - ys[:, None], xs[None, :] - xs[:, None]  # HW, HW (key - query)
        inside = (dy.abs() <= r) & (dx.abs() <= r)
        index = ((dy + r) * k + (dx + r)).clamp(0, k * k - 1)  # the unfold order: row-major offsets
        return self.relative_bias[:, index].masked_fill(~inside, float("-inf"))

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        _, _, height, width = x.shape
        k = self.kernel_size
        q, key, value = self.core.project_qkv(map_to_tokens(x))  # each B, h, HW, d
        if height * width <= self.dense_max_tokens:
            out = self.core.attend(q, key, value, self.banded_bias(height, width)[None])  # B, h, HW, d
            return tokens_to_map(self.core.output(self.core.merge_heads(out)), height, width)
        key, value = self._neighbours(key, height, width), self._neighbours(value, height, width)
        inside = F.unfold(x.new_ones(1, 1, height, width), k, padding=k // 2)[0].t() > 0  # HW, k*k
        bias = self.relative_bias[:, None, :].masked_fill(~inside, float("-inf"))  # h, HW, k*k
        logits = torch.einsum("bnqd,bnqkd->bnqk", q * self.core.head_dim**-0.5, key) + bias  # B, h, HW, k*k
        attn = F.dropout(logits.softmax(-1), self.core.attn_drop, self.training)
        out = torch.einsum("bnqk,bnqkd->bnqd", attn, value)  # B, h, HW, d
        return tokens_to_map(self.core.output(self.core.merge_heads(out)), height, width)
