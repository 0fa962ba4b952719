"""Image classifiers: any mixer backbone + global average pooling + a linear head.

Registered variants (`boxer.list_models()`):

| name | backbone | input | notes |
|---|---|---|---|
| `resnet50` | ResNet-50 (MixerResNet, torchvision layout) | 224, RGB | 25.6M params |
| `bot50` | BoTNet-50: `mhsa_rel` in all c5 blocks | 224, RGB | 20.9M params (paper: 20.8M) |
| `hybrid50` | ResNet-50, `mixer=` in `mixer_stages=` (default window, c4+c5) | 224, RGB | |
| `vit_s16`, `vit_ti16` | ViT-S/16, ViT-Ti/16 (GAP, no class token) | 224, RGB | |
| `swin_t` | Swin-T | 224, RGB | |
| `resnet_fm` | small ResNet for 28x28 | 28, gray | Fashion-MNIST |
| `resnet_fm_e2` | `resnet_fm` with bottleneck expansion 2 | 28, gray | the 10-minute target's model |
| `bot_fm` | `resnet_fm` with `mhsa_rel` in its last stage | 28, gray | |
| `hybrid_fm` | `resnet_fm` with `mixer=` in `mixer_stages=` | 28, gray | |
| `vit_fm`, `swin_fm` | small ViT (4x4 patches, dim 64) and Swin (2x2 patches) | 28, gray | |

Every factory takes keyword overrides (`num_classes`, `in_chans`, `img_size`, `mixer`, `mixer_kw`,
widths, depths, ...), e.g. the BoTNet position ablation: `create_model("bot50", mixer="mhsa_qr")`.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import LayerNorm2d
from torch import Tensor, nn

from boxer.models import register_model
from boxer.models.backbones import create_backbone
from boxer.models.backbones.base import Backbone

# The small ResNet for 28x28 inputs: a deep stem (3x3 conv at 28x28 to 16 channels, then a 3x3
# stride-2 conv to 32: 28 -> 14), three bottleneck stages at 14, 7 and 4 pixels (inner widths 32, 64,
# 128; outputs 4x), ResNet-D shortcuts (average pool + 1x1 conv; cheaper to back-propagate than
# strided 1x1 convs on CPU). 0.78M parameters, 44 MFLOPs; ~720 training img/s on one CPU thread
# (bf16, channels-last). On a CPU these small convolutions are memory-bound, so few wide layers train
# faster than many thin ones of the same FLOPs; the full-resolution first conv costs ~4% and is worth
# ~0.5% of validation accuracy in a 10-minute run.
FM_RESNET = {
    "stem": "deep",
    "avg_down": True,
    "stem_width": 32,
    "stem_stride": 2,
    "layers": (1, 1, 2),
    "widths": (32, 64, 128),
    "strides": (1, 2, 2),
    "img_size": 28,
    "in_chans": 1,
    "mixer_heads": 2,
}


class ImageClassifier(nn.Module):
    """Backbone (its last feature map) -> [LayerNorm] -> global average pool -> dropout -> Linear.

    Args:
        backbone: a backbone returning at least one map; the last one is pooled.
        num_classes: output classes.
        drop_rate: dropout before the linear head.
        head_norm: LayerNorm over channels before pooling (for transformer backbones without one).
        in_chans: input channels the backbone expects.
        img_size: the input side the variant is designed for.
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        num_classes: int = 1000,
        drop_rate: float = 0.0,
        head_norm: bool = False,
        in_chans: int = 3,
        img_size: int = 224,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes, self.in_chans, self.img_size = num_classes, in_chans, img_size
        channels = backbone.out_channels[-1]
        self.norm = LayerNorm2d(channels) if head_norm else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(channels, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> pooled features Tensor[B, C]."""
        return self.norm(self.backbone(x)[-1]).mean((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> logits Tensor[B, num_classes]."""
        return self.fc(self.drop(self.forward_features(x)))

    @torch.no_grad()
    def example_input(self, batch_size: int = 1, image_size: int | None = None) -> Tensor:
        """A random input of the variant's size (for benchmarks and smoke tests)."""
        side = image_size or self.img_size
        return torch.randn(batch_size, self.in_chans, side, side)


def _create(
    backbone: str,
    *,
    num_classes: int,
    in_chans: int,
    img_size: int,
    last_index: int,
    drop_rate: float = 0.0,
    head_norm: bool = False,
    **backbone_kw: Any,
) -> ImageClassifier:
    """Builds the backbone with only its last feature and wraps it in an `ImageClassifier`."""
    net = create_backbone(
        backbone, in_chans=in_chans, img_size=img_size, out_indices=(last_index,), **backbone_kw
    )
    return ImageClassifier(
        net,
        num_classes=num_classes,
        drop_rate=drop_rate,
        head_norm=head_norm,
        in_chans=in_chans,
        img_size=img_size,
    )


def _imagenet(overrides: dict[str, Any]) -> dict[str, Any]:
    return {"num_classes": 1000, "in_chans": 3, "img_size": 224, **overrides}


def _fashion(overrides: dict[str, Any]) -> dict[str, Any]:
    return {"num_classes": 10, "in_chans": 1, "img_size": 28, **overrides}


@register_model
def resnet50(**overrides: Any) -> ImageClassifier:
    """ResNet-50 (He et al., 2016)."""
    return _create("resnet50_mx", last_index=4, **_imagenet(overrides))


@register_model
def bot50(**overrides: Any) -> ImageClassifier:
    """BoTNet-50 (Srinivas et al., 2021); `mixer=` runs the paper's position ablation (mhsa, mhsa_qr,
    mhsa_abs)."""
    return _create("bot50", last_index=4, **_imagenet(overrides))


@register_model
def hybrid50(**overrides: Any) -> ImageClassifier:
    """ResNet-50 with `mixer` (default window) in `mixer_stages` (default c4, c5)."""
    return _create("hybrid50", last_index=4, **_imagenet(overrides))


@register_model
def vit_s16(**overrides: Any) -> ImageClassifier:
    """ViT-S/16 with global average pooling."""
    return _create("vit_s16", last_index=3, **_imagenet(overrides))


@register_model
def vit_ti16(**overrides: Any) -> ImageClassifier:
    """ViT-Ti/16 with global average pooling."""
    return _create("vit_ti16", last_index=3, **_imagenet(overrides))


@register_model
def swin_t(**overrides: Any) -> ImageClassifier:
    """Swin-T (Liu et al., 2021)."""
    return _create("swin_t", last_index=4, **_imagenet(overrides))


@register_model
def resnet_fm(**overrides: Any) -> ImageClassifier:
    """Small ResNet for 28x28 Fashion-MNIST (see FM_RESNET)."""
    kw = {**FM_RESNET, **_fashion(overrides)}
    return _create("resnet50_mx", last_index=len(kw["layers"]), **kw)


@register_model
def resnet_fm_e2(**overrides: Any) -> ImageClassifier:
    """`resnet_fm` with bottleneck expansion 2 instead of 4 (stage outputs 64, 128, 256 channels):
    0.53M parameters, and on one CPU thread ~1.4x the training images per second, because the
    block outputs at 14 x 14 (BatchNorm, ReLU, residual adds: memory-bound) shrink by half."""
    kw = {**FM_RESNET, "expansion": 2, **_fashion(overrides)}
    return _create("resnet50_mx", last_index=len(kw["layers"]), **kw)


@register_model
def bot_fm(**overrides: Any) -> ImageClassifier:
    """`resnet_fm` with BoT MHSA (relative positions) in its last stage."""
    kw = {**FM_RESNET, **_fashion(overrides)}
    return _create("bot50", last_index=len(kw["layers"]), **kw)


@register_model
def hybrid_fm(**overrides: Any) -> ImageClassifier:
    """`resnet_fm` with `mixer` (default local) in `mixer_stages` (default: the last two)."""
    kw = {"mixer": "local", **FM_RESNET, **_fashion(overrides)}
    n = len(kw["layers"])
    kw.setdefault("mixer_stages", (n - 1, n))
    return _create("hybrid50", last_index=n, **kw)


@register_model
def vit_fm(**overrides: Any) -> ImageClassifier:
    """Small ViT for Fashion-MNIST: 4x4 patches, dim 64, depth 6, 2 heads."""
    return _create("vit_fm", last_index=1, **_fashion(overrides))


@register_model
def swin_fm(**overrides: Any) -> ImageClassifier:
    """Small Swin for Fashion-MNIST: 2x2 patches, 3 stages."""
    return _create("swin_fm", last_index=2, **_fashion(overrides))


def is_classifier(name: str) -> bool:
    """True when the registered model `name` is an image classifier (this module or `efficient.py`)."""
    from boxer.models import MODELS

    return name in MODELS and MODELS.get(name).__module__ in (__name__, "boxer.models.efficient")
