"""A four-stage MetaFormer pyramid where every stage chooses its token mixer, MLP ratio, heads and the way
it downsamples: the macro-architecture of the efficient-ViT deck ("modern networks: focus on the
improvements of the token mixer"; docs/zoo.md, "The efficient-ViT deck beside ours").

Stem (stride 4 at 224: a p x p patch embedding, MAT's two 3x3 stride-2 convs, or PVTv2's overlapping
7x7/4 conv), then per stage a downsampling layer (none before the first) and `MixerBlock`s
(`blocks.py`: pre-norm mixer + MLP; `mixer=None` stages are MLP only). Downsampling layers:
"merge" (Swin's patch merging), "conv" (2x2 stride-2 conv + LayerNorm, ConvNeXt / EMSNet's patch
embedding), "overlap" (3x3 stride-2 conv + LayerNorm, PVTv2) and "bilinear" (MAT's bilinear patch
embedding, `BilinearPatchEmbed`). The named variants live in `efficient.py`.

Features: one map per stage, each with its own LayerNorm (as Swin's detection backbone), strides
stem_stride * 2**i, timm numbering (stride 4 = index 1). LayerNorm everywhere (no BatchNorm), so
`frozen_bn` is accepted and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import Tensor, nn

from boxer.errors import BoxerError
from boxer.layers.mixers.deformable import reference_points
from boxer.models.backbones.base import Backbone
from boxer.models.backbones.blocks import (
    MixerBlock,
    check_out_indices,
    downsampled,
    drop_path_rates,
    init_stage_outputs,
    run_stages,
)
from boxer.models.backbones.swin import Merge

STEMS = ("patch", "conv2", "overlap")
DOWNSAMPLES = ("merge", "conv", "overlap", "bilinear")


class BilinearPatchEmbed(nn.Module):
    """MAT's bilinear patch embedding: one bilinear sample per 2x2 cell, at the cell centre moved by a
    learnt offset (at most one cell), then a 1x1 projection and LayerNorm.

    What the deck leaves open: the offset network (here a 3x3 stride-2 depthwise conv, GELU, 1x1 conv
    to (dx, dy), zero-initialised, so training starts from 2x2 average pooling) and the number of
    samples per cell (one: the deck's ablation puts bilinear PE at 125k parameters below patch
    merging in MAT-2, which fits a C -> 2C projection of one sample, not of four).

    Args:
        in_dim: input channels.
        out_dim: output channels.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.offset = nn.Sequential(
            nn.Conv2d(in_dim, in_dim, 3, stride=2, padding=1, groups=in_dim),
            nn.GELU(),
            nn.Conv2d(in_dim, 2, 1, bias=False),
        )
        nn.init.zeros_(self.offset[-1].weight)
        self.proj = nn.Conv2d(in_dim, out_dim, 1)
        self.norm = LayerNorm2d(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> Tensor[B, C_out, ceil(H/2), ceil(W/2)]."""
        B, _, H, W = x.shape
        offsets = self.offset(x).tanh()  # B, 2, ceil(H/2), ceil(W/2) as (dx, dy) in cells
        cell = offsets.new_tensor([4 / W, 4 / H]).view(1, 2, 1, 1)  # one cell = 2 pixels
        points = reference_points(H, W, 2, x) + (offsets * cell).permute(0, 2, 3, 1)
        sampled = F.grid_sample(x, points, mode="bilinear", padding_mode="zeros", align_corners=False)
        return self.norm(self.proj(sampled))


def _stem(kind: str, in_chans: int, dim: int, patch_size: int) -> tuple[nn.Module, int]:
    """The stem module and its stride."""
    if kind == "patch":
        return nn.Sequential(nn.Conv2d(in_chans, dim, patch_size, patch_size), LayerNorm2d(dim)), patch_size
    if kind == "conv2":
        half = max(dim // 2, 1)
        layers = [
            nn.Conv2d(in_chans, half, 3, 2, 1),
            LayerNorm2d(half),
            nn.GELU(),
            nn.Conv2d(half, dim, 3, 2, 1),
        ]
        return nn.Sequential(*layers, LayerNorm2d(dim)), 4
    if kind == "overlap":
        return nn.Sequential(nn.Conv2d(in_chans, dim, 7, 4, 3), LayerNorm2d(dim)), 4
    raise BoxerError(f"backbone: stem must be one of {STEMS}, got {kind!r}")


def _downsample(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    if kind == "merge":
        return Merge(in_dim, out_dim)
    if kind == "conv":
        return nn.Sequential(
            nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(in_dim, out_dim, 2, 2), LayerNorm2d(out_dim)
        )
    if kind == "overlap":
        return nn.Sequential(nn.Conv2d(in_dim, out_dim, 3, 2, 1), LayerNorm2d(out_dim))
    if kind == "bilinear":
        return BilinearPatchEmbed(in_dim, out_dim)
    raise BoxerError(f"backbone: downsample must be one of {DOWNSAMPLES}, got {kind!r}")


def _per_stage(value: Any, stages: int, what: str) -> list[Any]:
    """One value for every stage, or a sequence with one entry per stage."""
    if isinstance(value, (list, tuple)):
        if len(value) != stages:
            raise BoxerError(f"backbone: {what} needs one entry per stage ({stages}), got {len(value)}")
        return list(value)
    return [value] * stages


class MetaFormer(Backbone):
    """Stem + stages of `MixerBlock`s with per-stage mixers (see the module docstring).

    Args:
        dims: width per stage.
        depths: blocks per stage.
        num_heads: heads per stage (or one for all).
        mixers: mixer name per stage (None = MLP-only blocks), or one for all.
        mlp_ratios: MLP width / dim, per stage or one for all.
        mixer_kw: extra mixer keywords, per stage (a sequence of dicts) or one dict for all.
        stem: "patch", "conv2" or "overlap".
        patch_size: the "patch" stem's side (its stride).
        downsample: "merge", "conv", "overlap" or "bilinear".
        pos_conv: a 3x3 depthwise position conv at the start of every block (CPVT).
        in_chans: input channels.
        img_size: nominal input side (sizes the mixers' position tables).
        drop_path_rate: stochastic depth of the last block (linear from 0).
        out_indices: stages to return (timm numbering; default the last three).
        pretrained: unsupported (trained from scratch); a value raises.
        frozen_bn: accepted for the API; there is no BatchNorm.
    """

    def __init__(
        self,
        *,
        dims: Sequence[int],
        depths: Sequence[int],
        num_heads: int | Sequence[int],
        mixers: str | None | Sequence[str | None],
        mlp_ratios: float | Sequence[float] = 4.0,
        mixer_kw: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        stem: str = "patch",
        patch_size: int = 4,
        downsample: str = "merge",
        pos_conv: bool = False,
        in_chans: int = 3,
        img_size: int | Sequence[int] = 224,
        drop_path_rate: float = 0.0,
        out_indices: Sequence[int] | None = None,
        pretrained: bool | str = False,
        frozen_bn: bool = False,
    ) -> None:
        super().__init__()
        if pretrained:
            raise BoxerError(
                "backbone: pretrained weights are not available for this family; train from scratch"
            )
        n = len(dims)
        if len(depths) != n:
            raise BoxerError("backbone: dims and depths need one entry per stage")
        heads, mixer_names = _per_stage(num_heads, n, "num_heads"), _per_stage(mixers, n, "mixers")
        ratios, kws = _per_stage(mlp_ratios, n, "mlp_ratios"), _per_stage(mixer_kw or {}, n, "mixer_kw")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.stem, stride = _stem(stem, in_chans, dims[0], patch_size)
        self.stem_stride = stride
        first = max(round(math.log2(stride)) - 1, 0)  # timm numbering: index i = stride 2**(i+1)
        strides = {first + i: stride * 2**i for i in range(n)}
        self.out_indices = check_out_indices(out_indices or tuple(strides)[-3:], strides, "metaformer")
        rates = drop_path_rates(drop_path_rate, depths)
        self.stages = nn.ModuleList()
        for i in range(n):
            feat = downsampled(size, stride * 2**i)
            down = [_downsample(downsample, dims[i - 1], dims[i])] if i > 0 else []
            blocks = [
                MixerBlock(
                    dims[i], mixer=mixer_names[i], num_heads=heads[i], mlp_ratio=ratios[i],
                    drop_path=rates[i][b], feat_size=feat, mixer_kw=kws[i], pos_conv=pos_conv,
                )
                for b in range(depths[i])
            ]  # fmt: skip
            self.stages.append(nn.Sequential(*down, *blocks))
        init_stage_outputs(self, dims, strides)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Tensor[B, C_in, H, W] -> one normalised map per stage in `out_indices`, fine to coarse."""
        s = self.stem_stride
        x = self.stem(F.pad(x, (0, (-x.shape[-1]) % s, 0, (-x.shape[-2]) % s)))  # B, dims[0], H/s, W/s
        return run_stages(self, x)
