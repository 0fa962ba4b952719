"""Building blocks shared by the mixer backbones: the MetaFormer block and stage feature sizes.

`MixerBlock` is the MetaFormer block (Yu et al., "MetaFormer is Actually What You Need for
Vision", CVPR 2022; timm's `MetaFormerBlock(token_mixer=...)`): x + DropPath(mixer(LN(x))), then
x + DropPath(MLP(LN(x))). ViT and Swin are this block with a global or a (shifted) window mixer.
It works on Tensor[B, C, H, W] throughout (LayerNorm over channels, 1x1-conv MLP), so any mixer of
`boxer.layers.mixers` plugs in. Uses timm's `DropPath`, `Mlp` and `LayerNorm2d`. Options for the
efficient-ViT backbones (`efficient.py`): `mixer=None` leaves the MLP only (MAT's pure-MLP stages),
`pos_conv=True` first adds a 3x3 depthwise conv residual (CPVT's conditional position encoding, as
in PartialFormer).
"""

from __future__ import annotations

import math
from typing import Any

from timm.layers import DropPath, LayerNorm2d, Mlp
from torch import Tensor, nn

from boxer.layers.mixers import create_mixer


class MixerBlock(nn.Module):
    """Pre-norm transformer block with any token mixer.

    Args:
        dim: channels.
        mixer: registered mixer name, or None for an MLP-only block.
        num_heads: heads given to the mixer.
        mlp_ratio: hidden width of the MLP / dim.
        drop_path: stochastic depth rate.
        feat_size: nominal (H, W) the mixer sees.
        mixer_kw: extra keywords for the mixer.
        pos_conv: add x + DWConv3x3(x) before the mixer (conditional position encoding).
    """

    def __init__(
        self,
        dim: int,
        *,
        mixer: str | None,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        feat_size: tuple[int, int] | None = None,
        mixer_kw: dict[str, Any] | None = None,
        pos_conv: bool = False,
    ) -> None:
        super().__init__()
        self.pos_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim) if pos_conv else None
        self.norm1 = LayerNorm2d(dim) if mixer is not None else None
        self.mixer = (
            create_mixer(mixer, dim, num_heads=num_heads, feat_size=feat_size, **(mixer_kw or {}))
            if mixer is not None
            else None
        )
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = LayerNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), use_conv=True)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        if self.pos_conv is not None:
            x = x + self.pos_conv(x)
        if self.mixer is not None:
            x = x + self.drop_path1(self.mixer(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def downsampled(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Map size after a total stride (ceil, as padded convs and pools give)."""
    return (math.ceil(size[0] / stride), math.ceil(size[1] / stride))


def drop_path_rates(rate: float, depths: list[int] | tuple[int, ...]) -> list[list[float]]:
    """Linearly increasing stochastic depth per block (Swin/ViT), split per stage."""
    total = sum(depths)
    rates = [rate * i / max(total - 1, 1) for i in range(total)]
    out, start = [], 0
    for d in depths:
        out.append(rates[start : start + d])
        start += d
    return out


def check_out_indices(out_indices, available: dict[int, int], model: str) -> tuple[int, ...]:
    """Validates feature indices (timm numbering) against the ones a backbone has (index -> stride)."""
    from boxer.errors import BoxerError

    wanted = tuple(sorted(set(out_indices)))
    if not wanted or not set(wanted) <= set(available):
        raise BoxerError(f"backbone {model}: out_indices must be a non-empty subset of {sorted(available)}")
    return wanted


def init_stage_outputs(backbone: nn.Module, dims, strides: dict[int, int]) -> None:
    """Sets the feature API of a staged backbone: one LayerNorm2d per output stage (`norms`), the
    stage indices, and `out_channels`, `out_strides`, `num_features` (needs `backbone.out_indices`)."""
    backbone.stage_index = list(strides)
    index = backbone.stage_index.index
    backbone.norms = nn.ModuleDict({str(i): LayerNorm2d(dims[index(i)]) for i in backbone.out_indices})
    backbone.out_channels = [dims[index(i)] for i in backbone.out_indices]
    backbone.out_strides = [strides[i] for i in backbone.out_indices]
    backbone.num_features = dims[-1]


def run_stages(backbone: nn.Module, x: Tensor) -> list[Tensor]:
    """Runs `backbone.stages` on the stem's output up to the last output stage; one normalised
    Tensor[B, C_i, H_i, W_i] per index in `out_indices`, fine to coarse."""
    feats = []
    for index, stage in zip(backbone.stage_index, backbone.stages):
        if index > backbone.out_indices[-1]:
            break
        x = stage(x)
        if index in backbone.out_indices:
            feats.append(backbone.norms[str(index)](x))
    return feats
