"""Image classifiers on the efficient-ViT deck's backbones (`backbones/efficient.py`; docs/zoo.md, "The
efficient-ViT deck beside ours"): 224-pixel RGB variants for the deck's tables and 28-pixel gray variants
for Fashion-MNIST.

| name | backbone | input |
|---|---|---|
| `emsnet_xxtiny`, `emsnet_xtiny`, `emsnet_tiny` | EMSNet | 224, RGB |
| `mat1`, `mat2` | MAT Transformer | 224, RGB |
| `partialformer_b0`, `partialformer_b1` | PartialFormer | 224, RGB |
| `pvt_v2_b0`, `swin_0p7g`, `convnext_xt`, `halo_0p7g` | the deck's ~0.7 GFLOPs comparison | 224, RGB |
| `emsnet_fm`, `mat_fm`, `partialformer_fm` | three-stage versions | 28, gray |

Same head as every classifier (`classifiers.ImageClassifier`: the last map, global average pool,
linear); the backbones already normalise their output maps.
"""

from __future__ import annotations

from typing import Any

from boxer.models import register_model
from boxer.models.classifiers import ImageClassifier, _create, _fashion, _imagenet


@register_model
def emsnet_xxtiny(**overrides: Any) -> ImageClassifier:
    """EMSNet-XXTiny, 224 x 224 RGB."""
    return _create("emsnet_xxtiny", last_index=4, **_imagenet(overrides))


@register_model
def emsnet_xtiny(**overrides: Any) -> ImageClassifier:
    """EMSNet-XTiny, 224 x 224 RGB."""
    return _create("emsnet_xtiny", last_index=4, **_imagenet(overrides))


@register_model
def emsnet_tiny(**overrides: Any) -> ImageClassifier:
    """EMSNet-Tiny, 224 x 224 RGB."""
    return _create("emsnet_tiny", last_index=4, **_imagenet(overrides))


@register_model
def mat1(**overrides: Any) -> ImageClassifier:
    """MAT-1, 224 x 224 RGB."""
    return _create("mat1", last_index=4, **_imagenet(overrides))


@register_model
def mat2(**overrides: Any) -> ImageClassifier:
    """MAT-2, 224 x 224 RGB."""
    return _create("mat2", last_index=4, **_imagenet(overrides))


@register_model
def partialformer_b0(**overrides: Any) -> ImageClassifier:
    """PartialFormer-B0, 224 x 224 RGB."""
    return _create("partialformer_b0", last_index=4, **_imagenet(overrides))


@register_model
def partialformer_b1(**overrides: Any) -> ImageClassifier:
    """PartialFormer-B1, 224 x 224 RGB."""
    return _create("partialformer_b1", last_index=4, **_imagenet(overrides))


@register_model
def pvt_v2_b0(**overrides: Any) -> ImageClassifier:
    """PVTv2-B0 (baseline), 224 x 224 RGB."""
    return _create("pvt_v2_b0", last_index=4, **_imagenet(overrides))


@register_model
def swin_0p7g(**overrides: Any) -> ImageClassifier:
    """Swin at ~0.7 GFLOPs (baseline), 224 x 224 RGB."""
    return _create("swin_0p7g", last_index=4, **_imagenet(overrides))


@register_model
def convnext_xt(**overrides: Any) -> ImageClassifier:
    """ConvNeXt at ~0.7 GFLOPs (baseline), 224 x 224 RGB."""
    return _create("convnext_xt", last_index=4, **_imagenet(overrides))


@register_model
def halo_0p7g(**overrides: Any) -> ImageClassifier:
    """local attention at ~0.7 GFLOPs (baseline), 224 x 224 RGB."""
    return _create("halo_0p7g", last_index=4, **_imagenet(overrides))


@register_model
def emsnet_fm(**overrides: Any) -> ImageClassifier:
    """EMSNet for 28 x 28 Fashion-MNIST (three stages)."""
    return _create("emsnet_fm", last_index=2, **_fashion(overrides))


@register_model
def mat_fm(**overrides: Any) -> ImageClassifier:
    """MAT for 28 x 28 Fashion-MNIST (three stages)."""
    return _create("mat_fm", last_index=2, **_fashion(overrides))


@register_model
def partialformer_fm(**overrides: Any) -> ImageClassifier:
    """PartialFormer for 28 x 28 Fashion-MNIST (three stages)."""
    return _create("partialformer_fm", last_index=2, **_fashion(overrides))
