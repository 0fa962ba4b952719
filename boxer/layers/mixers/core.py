"""The attention core shared by every attention mixer: q/k/v projections, multi-head
scaled-dot-product attention (`F.scaled_dot_product_attention`) with an additive bias, output
projection.

Mixers differ only in *which* keys each query sees (all tokens, a window, a neighbourhood, a reduced
map) and in the position term they add to the logits; they all build on `AttentionCore` instead of
re-implementing the projections (STYLE.md: no copy-pasted attention classes).

The fused `qkv` Linear is laid out as [q | k | v], each head-major (`3, num_heads, head_dim`), the
layout of timm's `WindowAttention.qkv` and `BottleneckAttn.qkv`, so weights map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boxer.layers.sdpa import scaled_dot_product_attention


class AttentionCore(nn.Module):
    """q, k, v projections + multi-head attention + output projection.

    Args:
        dim: input (and, by default, output) channels.
        num_heads: attention heads.
        head_dim: channels per head (default `dim // num_heads`).
        qkv_bias: bias in the q/k/v projection.
        proj: add the output Linear (BoTNet's MHSA has none: the block's next 1x1 conv plays
            that role); without it the inner width `num_heads * head_dim` must equal `dim`.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        out_dim: output channels of the projection (default `dim`; attention-augmented convolution
            projects to its attention share of the channels).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        head_dim: int | None = None,
        qkv_bias: bool = True,
        proj: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        if num_heads < 1 or (head_dim is None and dim % num_heads):
            raise ValueError(f"attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = head_dim or dim // num_heads
        inner = self.num_heads * self.head_dim
        if not proj and inner != (out_dim or dim):
            raise ValueError(
                f"attention: without an output projection num_heads*head_dim ({inner}) must equal dim"
            )
        self.inner_dim = inner
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(inner, out_dim or dim) if proj else nn.Identity()
        self.proj_drop = nn.Dropout(proj_drop)

    def split_heads(self, t: Tensor) -> Tensor:
        """Tensor[*, N, num_heads*head_dim] -> Tensor[*, num_heads, N, head_dim]."""
        t = t.unflatten(-1, (self.num_heads, self.head_dim))  # *, N, h, d
        return t.transpose(-3, -2)

    def merge_heads(self, t: Tensor) -> Tensor:
        """Tensor[*, num_heads, N, head_dim] -> Tensor[*, N, num_heads*head_dim]."""
        return t.transpose(-3, -2).flatten(-2)

    def project_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Tensor[*, N, dim] -> q, k, v, each Tensor[*, num_heads, N, head_dim]."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.split_heads(q), self.split_heads(k), self.split_heads(v)

    def project_q(self, x: Tensor) -> Tensor:
        """Queries only (the first third of the fused projection). Tensor[*, h, N, d]."""
        w, b = self._slice(0, 1)
        return self.split_heads(F.linear(x, w, b))

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values only, e.g. from a reduced map (PVT). Two Tensor[*, h, S, d]."""
        w, b = self._slice(1, 3)
        k, v = F.linear(x, w, b).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def _slice(self, start: int, stop: int) -> tuple[Tensor, Tensor | None]:
        rows = slice(start * self.inner_dim, stop * self.inner_dim)
        bias = self.qkv.bias[rows] if self.qkv.bias is not None else None
        return self.qkv.weight[rows], bias

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None, *, content: bool = True
    ) -> Tensor:
        """softmax(q k^T / sqrt(d) + bias) v, per head.

        Args:
            q: Tensor[*, h, Nq, d].
            k: Tensor[*, h, Nk, d].
            v: Tensor[*, h, Nk, d].
            bias: additive logits broadcastable to Tensor[*, h, Nq, Nk] (relative positions,
                masks as -inf); None for plain attention.
            content: include the content term q k^T; False leaves softmax(bias) (BoTNet's "qr").

        Returns:
            Tensor[*, h, Nq, d].
        """
        drop = self.attn_drop if self.training else 0.0
        if content:
            if bias is not None:
                bias = bias.to(q.dtype)
            return scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
        if bias is None:
            raise ValueError("attention: content=False needs a position bias")
        attn = torch.softmax(bias.expand(*q.shape[:-1], k.shape[-2]).to(q.dtype), dim=-1)
        return F.dropout(attn, drop, self.training) @ v

    def output(self, x: Tensor) -> Tensor:
        """Output projection and dropout: Tensor[*, N, inner] -> Tensor[*, N, dim]."""
        return self.proj_drop(self.proj(x))

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """Plain self-attention over tokens: Tensor[*, N, dim] -> Tensor[*, N, dim]."""
        q, k, v = self.project_qkv(x)
        return self.output(self.merge_heads(self.attend(q, k, v, bias)))


def map_to_tokens(x: Tensor) -> Tensor:
    """Tensor[B, C, H, W] -> Tensor[B, H*W, C] (row-major tokens)."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_map(t: Tensor, height: int, width: int) -> Tensor:
    """Tensor[B, H*W, C] -> Tensor[B, C, H, W]."""
    return t.transpose(1, 2).unflatten(2, (height, width))


def pair(size: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """An int or (h, w) as a tuple (None stays None)."""
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))
