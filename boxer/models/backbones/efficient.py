"""The efficient-ViT deck's backbones (docs/zoo.md, "The efficient-ViT deck beside ours") and the baselines
of its "comparison with other token mixers" at ~0.7 GFLOPs, as `MetaFormer` configurations
(`metaformer.py`).

From the deck's tables, and our choices where the deck is silent:

- `emsnet_xxtiny` / `emsnet_xtiny` / `emsnet_tiny`: channels, depths and MLP ratios as tabled. Ours:
  4x4 patch stem, 2x2 stride-2 conv patch embeddings, heads = C / 32.
- `mat1` / `mat2`: base dim 24 / 32 doubled per stage, blocks 2-2-6-6, heads 12-24 / 8-16 in the MAT
  stages 3-4, MLP-only stages 1-2, a stem of two 3x3 stride-2 convs, bilinear patch embeddings.
  Ours: MLP ratio 4, window 7.
- `partialformer_b0` / `partialformer_b1`: C 24 / 32 doubled per stage, L 2-2-6-6, heads 2-4-8-16, a
  CPVT 3x3 depthwise position conv in every block. Ours: MLP ratio 4, 4x4 patch stem, 2x2-conv
  embeddings, foreground ratios 0.25-0.25-0.5-0.5 (the deck gives none; these bring B1 to the
  deck's 0.7 GFLOPs, where 0.5 everywhere costs 0.97).
- `pvt_v2_b0`: PVTv2-B0 (Wang et al., 2022): dims 32-64-160-256, two blocks per stage, spatial
  reduction 8-4-2-1, MLP ratios 8-8-4-4, overlapping patch embeddings. Ours: no depthwise conv in
  the MLP.
- `swin_0p7g`, `convnext_xt`, `halo_0p7g`: the deck's ~0.7 GFLOPs comparison rows, sized by us (the
  deck gives only 4.4M / 0.7G): Swin dims 40-80-160-320, depths 2-2-4-2, head dim 20, window 7;
  ConvNeXt dims 48-96-192-384, depths 2-2-4-2, 7x7 depthwise; local attention at Swin's sizes with
  the 7x7 sliding-window `local` mixer on its gathered (linear-cost) path, not HaloNet's blocked
  halos.

Each `*_fm` variant is a three-stage version for 28x28 Fashion-MNIST (2x2 patch stem, maps 14-7-4).
"""

from __future__ import annotations

from typing import Any

from boxer.models.backbones import register_backbone
from boxer.models.backbones.metaformer import MetaFormer
from boxer.models.backbones.swin import HierarchicalTransformer

EMS_BASE = {"mixers": "ems", "mlp_ratios": (8, 8, 4, 4), "stem": "patch", "downsample": "conv"}
MAT_BASE = {
    "mixers": (None, None, "mat", "mat"), "depths": (2, 2, 6, 6), "stem": "conv2", "downsample": "bilinear",
    "mixer_kw": {"window_size": 7},
}  # fmt: skip
PARTIAL_BASE = {
    "mixers": "partial", "depths": (2, 2, 6, 6), "num_heads": (2, 4, 8, 16), "pos_conv": True,
    "downsample": "conv", "mixer_kw": [{"fg_ratio": r} for r in (0.25, 0.25, 0.5, 0.5)],
}  # fmt: skip
FM = {"img_size": 28, "in_chans": 1, "patch_size": 2, "stem": "patch"}


def _build(base: dict[str, Any], variant: dict[str, Any], overrides: dict[str, Any]) -> MetaFormer:
    return MetaFormer(**{**base, **variant, **overrides})


def _heads(dims: tuple[int, ...], head_dim: int = 32) -> tuple[int, ...]:
    return tuple(max(d // head_dim, 1) for d in dims)


@register_backbone
def emsnet_xxtiny(**kw: Any) -> MetaFormer:
    """EMSNet-XXTiny: C 32-64-128-192, L 2-2-4-2 (deck: 2.5M, 0.5 GFLOPs)."""
    dims = (32, 64, 128, 192)
    return _build(EMS_BASE, {"dims": dims, "depths": (2, 2, 4, 2), "num_heads": _heads(dims)}, kw)


@register_backbone
def emsnet_xtiny(**kw: Any) -> MetaFormer:
    """EMSNet-XTiny: C 32-64-96-128, L 3-3-10-2 (deck: 3.0M, 0.7 GFLOPs)."""
    dims = (32, 64, 96, 128)
    return _build(EMS_BASE, {"dims": dims, "depths": (3, 3, 10, 2), "num_heads": _heads(dims)}, kw)


@register_backbone
def emsnet_tiny(**kw: Any) -> MetaFormer:
    """EMSNet-Tiny: C 64-96-128-256, L 3-3-10-2 (deck: 5.4M, 1.9 GFLOPs)."""
    dims = (64, 96, 128, 256)
    return _build(EMS_BASE, {"dims": dims, "depths": (3, 3, 10, 2), "num_heads": _heads(dims)}, kw)


@register_backbone
def mat1(**kw: Any) -> MetaFormer:
    """MAT-1: base dim 24, blocks 2-2-6-6, heads 12-24 in stages 3-4 (deck: 6.714M, 0.389 GFLOPs)."""
    return _build(MAT_BASE, {"dims": (24, 48, 96, 192), "num_heads": (1, 1, 12, 24)}, kw)


@register_backbone
def mat2(**kw: Any) -> MetaFormer:
    """MAT-2: base dim 32, blocks 2-2-6-6, heads 8-16 in stages 3-4 (deck: 10.767M, 0.666 GFLOPs)."""
    return _build(MAT_BASE, {"dims": (32, 64, 128, 256), "num_heads": (1, 1, 8, 16)}, kw)


@register_backbone
def partialformer_b0(**kw: Any) -> MetaFormer:
    """PartialFormer-B0: C 24 doubled, L 2-2-6-6, heads 2-4-8-16 (deck: 5.3M, 0.4 GFLOPs)."""
    return _build(PARTIAL_BASE, {"dims": (24, 48, 96, 192)}, kw)


@register_backbone
def partialformer_b1(**kw: Any) -> MetaFormer:
    """PartialFormer-B1: C 32 doubled, L 2-2-6-6, heads 2-4-8-16 (deck: 8.2M, 0.7 GFLOPs)."""
    return _build(PARTIAL_BASE, {"dims": (32, 64, 128, 256)}, kw)


@register_backbone
def pvt_v2_b0(**kw: Any) -> MetaFormer:
    """PVTv2-B0 (the deck's comparison: 3.7M, 0.6 GFLOPs)."""
    variant = {
        "dims": (32, 64, 160, 256), "depths": (2, 2, 2, 2), "num_heads": (1, 2, 5, 8), "mixers": "pvt",
        "mixer_kw": [{"sr_ratio": r} for r in (8, 4, 2, 1)], "mlp_ratios": (8, 8, 4, 4),
        "stem": "overlap", "downsample": "overlap",
    }  # fmt: skip
    return _build({}, variant, kw)


@register_backbone
def swin_0p7g(**kw: Any) -> HierarchicalTransformer:
    """Swin at ~0.7 GFLOPs (the deck's comparison: 4.4M, 0.7 GFLOPs)."""
    variant = {"dims": (40, 80, 160, 320), "depths": (2, 2, 4, 2), "num_heads": (2, 4, 8, 16)}
    return HierarchicalTransformer(**{"out_indices": (2, 3, 4), **variant, **kw})


@register_backbone
def convnext_xt(**kw: Any) -> MetaFormer:
    """ConvNeXt at ~0.7 GFLOPs: 7x7 depthwise mixer (the deck's comparison: 4.4M, 0.7 GFLOPs)."""
    variant = {
        "dims": (48, 96, 192, 384), "depths": (2, 2, 4, 2), "num_heads": 1, "mixers": "dwconv7",
        "downsample": "conv",
    }  # fmt: skip
    return _build({}, variant, kw)


@register_backbone
def halo_0p7g(**kw: Any) -> MetaFormer:
    """Local (sliding-window) attention at ~0.7 GFLOPs (the deck's HaloNet row: 4.4M, 0.7 GFLOPs)."""
    variant = {
        "dims": (40, 80, 160, 320),
        "depths": (2, 2, 4, 2),
        "num_heads": (2, 4, 8, 16),
        "mixers": "local",
        "mixer_kw": {"dense_max_tokens": 0},
    }
    return _build({}, variant, kw)


@register_backbone
def emsnet_fm(**kw: Any) -> MetaFormer:
    """EMSNet for 28x28: C 32-64-128, L 2-2-2, MLP ratios 8-4-4."""
    variant = {"dims": (32, 64, 128), "depths": (2, 2, 2), "num_heads": (1, 2, 4), "mlp_ratios": (8, 4, 4)}
    return _build({**EMS_BASE, **FM}, variant, kw)


@register_backbone
def mat_fm(**kw: Any) -> MetaFormer:
    """MAT for 28x28: an MLP-only stage at 14x14, MAT stages at 7x7 and 4x4 (window 4)."""
    variant = {
        "dims": (32, 64, 128), "depths": (2, 2, 2), "num_heads": (1, 4, 8), "mixers": (None, "mat", "mat"),
        "mixer_kw": {"window_size": 4},
    }  # fmt: skip
    return _build({**MAT_BASE, **FM}, variant, kw)


@register_backbone
def partialformer_fm(**kw: Any) -> MetaFormer:
    """PartialFormer for 28x28: C 32-64-128, L 2-2-2, heads 2-4-8."""
    variant = {
        "dims": (32, 64, 128),
        "depths": (2, 2, 2),
        "num_heads": (2, 4, 8),
        "mixer_kw": {"fg_ratio": 0.5},
    }
    return _build({**PARTIAL_BASE, **FM}, variant, kw)
