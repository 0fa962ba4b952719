"""Any timm model as a backbone through `features_only` (timm's feature_info gives channels/strides)."""

from __future__ import annotations

from collections.abc import Sequence

import timm
from timm.layers import freeze_batch_norm_2d
from torch import Tensor

from boxer.errors import BoxerError
from boxer.models.backbones.base import Backbone


class TimmFeatures(Backbone):
    """Wraps `timm.create_model(name, features_only=True)`.

    Args:
        name: a timm model name (`timm.list_models()`).
        out_indices: feature indices in timm's numbering (default: the last three).
        pretrained: load timm's pretrained weights (needs them downloaded or cached).
        frozen_bn: convert BatchNorm layers to FrozenBatchNorm2d.
        kwargs: passed to `timm.create_model` (e.g. img_size for ViT/Swin).
    """

    def __init__(
        self,
        name: str,
        *,
        out_indices: Sequence[int] | None = None,
        pretrained: bool = False,
        frozen_bn: bool = True,
        **kwargs,
    ) -> None:
        super().__init__()
        if name not in timm.list_models():
            raise BoxerError(f"backbone: unknown timm model {name!r}")
        probe_kw = {"out_indices": tuple(out_indices)} if out_indices is not None else {}
        model = timm.create_model(name, features_only=True, pretrained=pretrained, **probe_kw, **kwargs)
        if out_indices is None:
            n = len(model.feature_info)
            keep = tuple(range(max(n - 3, 0), n))
            model = timm.create_model(
                name, features_only=True, pretrained=pretrained, out_indices=keep, **kwargs
            )
        self.body = freeze_batch_norm_2d(model) if frozen_bn else model
        self.out_channels = list(model.feature_info.channels())
        self.out_strides = list(model.feature_info.reduction())
        self.channels_last = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = self.body(x)
        if self.channels_last:  # timm's Swin-like models return B, H, W, C; the API promises NCHW
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return feats
