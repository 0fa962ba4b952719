"""Attention-augmented convolution (Bello et al., "Attention Augmented Convolutional Networks",
ICCV 2019; docs/zoo.md, "Token mixers").

The output is the concatenation of a k x k convolution's channels and multi-head self-attention
channels: AAConv(X) = Concat[Conv(X), MHA(X)], with 2-D relative position logits (q . (R_h[y_j - y_i] +
R_w[x_j - x_i]), the split tables of `positions.RelativeLogits2d`, which BoTNet took from this paper)
added to the content logits. The attention output passes a 1x1 projection (W_O in the paper).

Choices where the paper has hyper-parameters: `attn_ratio` = d_v / C_out = 0.5 (the attention share
of the output channels) and d_k = d_v (one head width for q, k and v, the attention core's
convention; the paper also tries d_k = 2 d_v); no q/k/v bias; the convolution has a bias (a
BatchNorm usually follows). The relative tables are sized from `feat_size` (other sizes crop or
interpolate them, as `positions.py` describes).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, pair, tokens_to_map
from boxer.layers.mixers.positions import RelativeLogits2d


class AttentionAugmentedConv(nn.Module):
    """Concat[conv(x), MHSA with relative logits(x)] along channels.

    Args:
        dim: channels in and out.
        num_heads: attention heads.
        attn_ratio: share of the output channels produced by attention (0 < ratio < 1).
        kernel_size: convolution kernel side (odd).
        feat_size: nominal (H, W) for the relative tables.
        qkv_bias: bias in the q/k/v projection.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        attn_ratio: float = 0.5,
        kernel_size: int = 3,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        attn_dim = round(dim * attn_ratio)
        if not 0 < attn_dim < dim or attn_dim % num_heads or kernel_size % 2 == 0:
            raise ValueError(
                f"attention-augmented conv: need 0 < dim*attn_ratio < dim, divisible by num_heads, and "
                f"an odd kernel; got dim={dim}, attn_ratio={attn_ratio}, num_heads={num_heads}, "
                f"kernel_size={kernel_size}"
            )
        self.conv = nn.Conv2d(dim, dim - attn_dim, kernel_size, padding=kernel_size // 2)
        self.core = AttentionCore(
            dim, num_heads=num_heads, head_dim=attn_dim // num_heads, qkv_bias=qkv_bias, out_dim=attn_dim
        )
        self.pos_embed = RelativeLogits2d(self.core.head_dim, pair(feat_size) or (14, 14))

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]: conv channels first, attention channels last."""
        H, W = x.shape[-2:]
        q, k, v = self.core.project_qkv(map_to_tokens(x))  # each B, h, HW, d
        out = self.core.attend(q, k, v, self.pos_embed(q, H, W))  # B, h, HW, d
        attn = tokens_to_map(self.core.output(self.core.merge_heads(out)), H, W)  # B, d_v, H, W
        return torch.cat((self.conv(x), attn), 1)
