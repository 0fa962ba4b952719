"""Backbones with one multi-scale feature API, so any backbone plugs into any detector.

Contract (see `base.Backbone`): `forward(x: Tensor[B, 3, H, W]) -> list[Tensor[B, C_i, H/s_i, W/s_i]]`,
fine to coarse, with `out_channels` (C_i) and `out_strides` (s_i) as attributes.

Names: the registered ones (`list_backbones()`), and any timm model as `timm:<name>` through
timm's `features_only`.
"""

from __future__ import annotations

from typing import Any

from boxer.registry import Registry

BACKBONES = Registry("backbone")
register_backbone = BACKBONES.register


def create_backbone(name: str, **kwargs: Any):
    """Builds a backbone by registered name, or `timm:<model>` for any timm model."""
    if name.startswith("timm:"):
        from boxer.models.backbones.timm_features import TimmFeatures

        return TimmFeatures(name[len("timm:") :], **kwargs)
    return BACKBONES.create(name, **kwargs)


def list_backbones(pattern: str = "*") -> list[str]:
    return BACKBONES.names(pattern)


# Explicit imports register the backbones. One line per module.
import boxer.models.backbones.efficient  # noqa: E402,F401  (the efficient-ViT deck's backbones)
import boxer.models.backbones.hybrid  # noqa: E402,F401  (ResNet-50 / BoT50 / hybrid mixers)
import boxer.models.backbones.swin  # noqa: E402,F401  (Swin-style hierarchical)
import boxer.models.backbones.vit  # noqa: E402,F401  (ViT + simple feature pyramid)
from boxer.models.backbones import resnet  # noqa: E402,F401
