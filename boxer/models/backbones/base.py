"""The backbone feature API shared by every detector (timm's features_only / feature_info idea)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Backbone(nn.Module):
    """Base class: multi-scale features with known strides and channels.

    Subclasses set `out_channels` and `out_strides` (one entry per returned map, fine to coarse)
    and implement `forward(x: Tensor[B, 3, H, W]) -> list[Tensor[B, C_i, ceil(H/s_i), ceil(W/s_i)]]`.
    """

    out_channels: list[int]
    out_strides: list[int]

    def forward(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def freeze_modules(*modules: nn.Module) -> None:
    """Turns off gradients of every parameter in `modules`."""
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(False)


@torch.no_grad()
def check_features(backbone: Backbone, features: list[Tensor]) -> None:
    """Asserts that `features` match the backbone's declared channels (used by tests)."""
    assert len(features) == len(backbone.out_channels) == len(backbone.out_strides)
    for f, c in zip(features, backbone.out_channels):
        assert f.shape[1] == c, (f.shape, c)
