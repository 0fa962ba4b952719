"""Swin-style hierarchical transformer (Liu et al., ICCV 2021) built from `MixerBlock`s.

A `patch_size` patch embedding (+ LayerNorm), then stages of blocks separated by patch merging
(2x2 neighbours concatenated, LayerNorm, Linear 4C -> 2C: timm's `PatchMerging`, which also pads odd
sizes). Within a stage the blocks cycle through `mixers`: ("window", "window_shifted") is Swin;
("pvt",) gives a PVT-like pyramid, ("mhsa_rel",) a global-attention pyramid, and so on.

Features: one map per stage, strides patch_size * 2**i; `out_indices` use timm numbering, so for
patch 4 they are 1..4 (strides 4..32). Each returned map gets its own LayerNorm (as Swin's detection
backbone). Deviations: no absolute position embedding (Swin's default too), PyTorch default init for
the mixers (they own their init), LayerNorm over channels of Tensor[B, C, H, W].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from timm.layers import LayerNorm2d
from timm.models.swin_transformer import PatchMerging
from torch import Tensor, nn

from boxer.errors import BoxerError
from boxer.models.backbones import register_backbone
from boxer.models.backbones.base import Backbone
from boxer.models.backbones.blocks import (
    MixerBlock,
    check_out_indices,
    downsampled,
    drop_path_rates,
    init_stage_outputs,
    run_stages,
)


class Merge(nn.Module):
    """timm's PatchMerging on Tensor[B, C, H, W] -> Tensor[B, out, ceil(H/2), ceil(W/2)]."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.merge = PatchMerging(dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class HierarchicalTransformer(Backbone):
    """Multi-stage transformer with patch merging; any mixers.

    Args:
        img_size: nominal input side (sizes position tables of mixers that have them).
        patch_size: patch side of the embedding (the first stage's stride).
        in_chans: input channels.
        dims: width per stage.
        depths: blocks per stage.
        num_heads: heads per stage.
        mixers: mixer names cycled over the blocks of every stage.
        mixer_kw: extra keywords for every mixer (e.g. window_size).
        mlp_ratio: MLP width / dim.
        drop_path_rate: stochastic depth of the last block (linear from 0).
        out_indices: stages to return (timm numbering; default all).
        pretrained: unsupported (weights from scratch); a path raises.
        frozen_bn: accepted for the API; there is no BatchNorm.
    """

    def __init__(
        self,
        *,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        dims: Sequence[int] = (96, 192, 384, 768),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        mixers: Sequence[str] = ("window", "window_shifted"),
        mixer_kw: dict[str, Any] | None = None,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        out_indices: Sequence[int] | None = None,
        pretrained: bool | str = False,
        frozen_bn: bool = False,
    ) -> None:
        super().__init__()
        if pretrained:
            raise BoxerError("backbone swin: pretrained weights are not supported; train from scratch")
        if not len(dims) == len(depths) == len(num_heads):
            raise BoxerError("backbone swin: dims, depths and num_heads need one entry per stage")
        if isinstance(mixers, str):
            mixers = (mixers,)
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_embed = nn.Sequential(
            nn.Conv2d(in_chans, dims[0], patch_size, patch_size), LayerNorm2d(dims[0])
        )
        self.patch_size = patch_size
        first = max(round(math.log2(patch_size)) - 1, 0)  # timm numbering: index i = stride 2**(i+1)
        strides = {first + i: patch_size * 2**i for i in range(len(dims))}
        self.out_indices = check_out_indices(out_indices or tuple(strides), strides, "swin")
        rates = drop_path_rates(drop_path_rate, depths)
        self.stages = nn.ModuleList()
        for i, (dim, depth, heads) in enumerate(zip(dims, depths, num_heads)):
            feat = downsampled(size, patch_size * 2**i)
            merge = [Merge(dims[i - 1], dim)] if i > 0 else []
            blocks = [
                MixerBlock(
                    dim, mixer=mixers[b % len(mixers)], num_heads=heads, mlp_ratio=mlp_ratio,
                    drop_path=rates[i][b], feat_size=feat, mixer_kw=mixer_kw,
                )
                for b in range(depth)
            ]  # fmt: skip
            self.stages.append(nn.Sequential(*merge, *blocks))
        init_stage_outputs(self, dims, strides)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Tensor[B, C_in, H, W] -> one normalised map per stage in `out_indices`, fine to coarse."""
        p = self.patch_size
        x = nn.functional.pad(x, (0, (-x.shape[-1]) % p, 0, (-x.shape[-2]) % p))
        x = self.patch_embed(x)  # B, dims[0], H/p, W/p
        return run_stages(self, x)


@register_backbone
def swin_t(**kw: Any) -> HierarchicalTransformer:
    """Swin-T: dims 96..768, depths 2-2-6-2, heads 3-6-12-24, window 7."""
    return HierarchicalTransformer(**kw)


@register_backbone
def swin_fm(**kw: Any) -> HierarchicalTransformer:
    """Small Swin for 28x28 Fashion-MNIST: 2x2 patches (14x14), dims 32-64-128, depths 2-2-2, window 7."""
    defaults = {
        "img_size": 28, "in_chans": 1, "patch_size": 2, "dims": (32, 64, 128), "depths": (2, 2, 2),
        "num_heads": (2, 4, 8), "mixer_kw": {"window_size": 7},
    }  # fmt: skip
    return HierarchicalTransformer(**{**defaults, **kw})
