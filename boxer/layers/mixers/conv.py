"""Non-attention token mixers, the baselines of the efficient-ViT deck's tables
(docs/zoo.md, "The efficient-ViT deck beside ours").

- `ConvMixer`: a dense k x k convolution (ResNet's 3x3).
- `DepthwiseConvMixer`: a depthwise k x k convolution (ConvNeXt's 7x7, Liu et al., CVPR 2022).
- `PoolMixer`: PoolFormer's average pooling minus identity (Yu et al., MetaFormer, CVPR 2022).

They take `num_heads` and `feat_size` only to share the mixer interface; both are ignored.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ConvMixer(nn.Module):
    """k x k convolution, same padding, no bias (a BatchNorm follows it in the ResNet block).

    Args:
        dim: channels in and out.
        num_heads: ignored.
        kernel_size: odd kernel side.
        groups: conv groups (dim = depthwise).
        bias: conv bias.
        feat_size: ignored.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int | None = None,
        kernel_size: int = 3,
        groups: int = 1,
        bias: bool = False,
        feat_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv mixer: kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=groups, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        return self.conv(x)


class DepthwiseConvMixer(ConvMixer):
    """Depthwise k x k convolution with bias (ConvNeXt's 7x7).

    Args:
        dim: channels.
        num_heads: ignored.
        kernel_size: odd kernel side.
        feat_size: ignored.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int | None = None,
        kernel_size: int = 7,
        feat_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__(dim, kernel_size=kernel_size, groups=dim, bias=True)


class PoolMixer(nn.Module):
    """avg_pool(x) - x with a 3x3 window, stride 1, padding not counted (PoolFormer); no parameters.

    Args:
        dim: channels (unused: the mixer has no parameters).
        num_heads: ignored.
        pool_size: odd pooling window.
        feat_size: ignored.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int | None = None,
        pool_size: int = 3,
        feat_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.pool_size = pool_size

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        k = self.pool_size
        return F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False) - x
