"""Vision Transformer (Dosovitskiy et al., ICLR 2021) built from `MixerBlock`s, with a ViTDet-style
simple feature pyramid (Li et al., ECCV 2022) for detectors.

Patch embedding (a `patch_size`-strided conv), a learned absolute position embedding (bicubically
resized for other input sizes, as timm's `resample_abs_pos_embed`), `depth` pre-norm blocks whose
mixer defaults to global MHSA (`mhsa`), and a final LayerNorm. Any registered mixer can replace it.

Deviation from ViT: no class token. A class token is not a cell of the H x W grid that every mixer
works on, so classifiers pool the final map (global average pooling, as in Beyer et al., "Better
plain ViT baselines", 2022).

Features: by default one map at stride `patch_size` (index 3 for patch 16). Asking for other
`out_indices` (timm numbering: index i = stride 2**(i+1), so 1..4 = strides 4..32) adds the simple
feature pyramid: stride 4 = two 2x transposed convs (dim/4 channels), stride 8 = one (dim/2),
stride 16 = the map (dim), stride 32 = 2x2 max pool (dim).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d, trunc_normal_
from torch import Tensor, nn

from boxer.errors import BoxerError
from boxer.models.backbones import register_backbone
from boxer.models.backbones.base import Backbone
from boxer.models.backbones.blocks import MixerBlock, check_out_indices, drop_path_rates


def _pyramid_level(dim: int, scale: float) -> tuple[nn.Module, int]:
    """ViTDet's simple pyramid branch for a rescale factor (4, 2, 1 or 0.5); returns (module, channels)."""
    if scale == 4:
        up = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 2, 2, 2), LayerNorm2d(dim // 2), nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, 2, 2),
        )  # fmt: skip
        return up, dim // 4
    if scale == 2:
        return nn.ConvTranspose2d(dim, dim // 2, 2, 2), dim // 2
    if scale == 1:
        return nn.Identity(), dim
    return nn.MaxPool2d(2, 2, ceil_mode=True), dim


class VisionTransformer(Backbone):
    """Isotropic ViT on a patch grid, any mixer.

    Args:
        img_size: nominal input side (sizes the position embedding).
        patch_size: patch side (the feature stride).
        in_chans: input channels.
        dim: embedding width.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width / dim.
        mixer: registered mixer name for every block.
        mixer_kw: extra mixer keywords.
        drop_path_rate: stochastic depth of the last block (linear from 0).
        out_indices: feature indices (timm numbering, see the module docstring); default: the map only.
        pretrained: unsupported (weights from scratch); a path raises.
        frozen_bn: accepted for the API; ViT has no BatchNorm.
    """

    def __init__(
        self,
        *,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        mixer: str = "mhsa",
        mixer_kw: dict[str, Any] | None = None,
        drop_path_rate: float = 0.0,
        out_indices: Sequence[int] | None = None,
        pretrained: bool | str = False,
        frozen_bn: bool = False,
    ) -> None:
        super().__init__()
        if pretrained:
            raise BoxerError("backbone vit: pretrained weights are not supported; train from scratch")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = patch_size
        self.grid = (math.ceil(size[0] / patch_size), math.ceil(size[1] / patch_size))
        self.patch_embed = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(trunc_normal_(torch.empty(1, dim, *self.grid), std=0.02))
        rates = drop_path_rates(drop_path_rate, [depth])[0]
        self.blocks = nn.Sequential(
            *[
                MixerBlock(
                    dim, mixer=mixer, num_heads=num_heads, mlp_ratio=mlp_ratio, drop_path=rates[i],
                    feat_size=self.grid, mixer_kw=mixer_kw,
                )
                for i in range(depth)
            ]
        )  # fmt: skip
        self.norm = LayerNorm2d(dim)
        self.num_features = dim
        scales = _pyramid_scales(patch_size)  # feature index -> rescale factor of the map
        base = next(i for i, s in scales.items() if s == 1)
        self.out_indices = check_out_indices(out_indices or (base,), scales, "vit")
        levels = [_pyramid_level(dim, scales[i]) for i in self.out_indices]
        self.pyramid = nn.ModuleList(m for m, _ in levels)
        self.out_channels = [c for _, c in levels]
        self.out_strides = [round(patch_size / scales[i]) for i in self.out_indices]

    def position_embedding(self, height: int, width: int) -> Tensor:
        """Tensor[1, dim, h, w]: the learned grid, bicubically resized when the grid differs."""
        if (height, width) == self.grid:
            return self.pos_embed
        return F.interpolate(self.pos_embed, size=(height, width), mode="bicubic", align_corners=False)

    def forward_map(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> the normalised token map Tensor[B, dim, H/p, W/p] (ceil)."""
        p = self.patch_size
        x = F.pad(x, (0, (-x.shape[-1]) % p, 0, (-x.shape[-2]) % p))
        x = self.patch_embed(x)  # B, dim, h, w
        x = x + self.position_embedding(*x.shape[-2:])
        return self.norm(self.blocks(x))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Tensor[B, C_in, H, W] -> features at `out_indices` (see the module docstring)."""
        x = self.forward_map(x)
        return [level(x) for level in self.pyramid]


def _pyramid_scales(patch_size: int) -> dict[int, float]:
    """Feature index (timm numbering: stride 2**(i+1)) -> rescale of the patch map, for the levels the
    pyramid can make. A patch size that is not a power of two gives only the map itself."""
    base = max(round(math.log2(patch_size)) - 1, 0)
    if 2 ** (base + 1) != patch_size:
        return {base: 1.0}
    return {base + j: 2.0**-j for j in (-2, -1, 0, 1) if base + j >= 0}


@register_backbone
def vit_s16(**kw: Any) -> VisionTransformer:
    """ViT-S/16: dim 384, depth 12, 6 heads (22M parameters)."""
    return VisionTransformer(**{"patch_size": 16, "dim": 384, "depth": 12, "num_heads": 6, **kw})


@register_backbone
def vit_ti16(**kw: Any) -> VisionTransformer:
    """ViT-Ti/16: dim 192, depth 12, 3 heads."""
    return VisionTransformer(**{"patch_size": 16, "dim": 192, "depth": 12, "num_heads": 3, **kw})


@register_backbone
def vit_fm(**kw: Any) -> VisionTransformer:
    """Small ViT for 28x28 Fashion-MNIST: 4x4 patches (7x7 grid), dim 64, depth 6, 2 heads (33 MFLOPs)."""
    defaults = {"img_size": 28, "in_chans": 1, "patch_size": 4, "dim": 64, "depth": 6, "num_heads": 2}
    return VisionTransformer(**{**defaults, **kw})
