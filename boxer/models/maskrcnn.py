"""Mask R-CNN (He et al., ICCV 2017) with an FPN over any boxer backbone, e.g. BoTNet-50.

The BoTNet deck evaluates BoT50 inside Mask R-CNN; this wraps torchvision's `MaskRCNN` (RPN, RoIAlign,
box and mask heads, losses, post-processing) around `create_backbone(name, out_indices=(1, 2, 3, 4))`
plus torchvision's `FeaturePyramidNetwork` (P2-P5 and a max-pooled P6), and speaks the detector
protocol of docs/CONTRACTS.md so that `boxer train --model maskrcnn_bot50` and `boxer eval` work:

- `forward(images, pad_mask, targets)` (training): weighted losses `loss_classifier`, `loss_box_reg`,
  `loss_mask`, `loss_objectness`, `loss_rpn_box_reg` and their sum `loss`;
- `predict(images, pad_mask, targets)`: per image `boxes` xyxy in original pixels, `scores`,
  contiguous `labels`, and `masks` bool [K, h0, w0].

Our labels 0..C-1 become torchvision's 1..C (0 = background) and back. Deviations from torchvision's
defaults: images arrive already normalised and resized by boxer's data pipeline, so torchvision's
transform only batches them (no second normalisation or resize); each image is cut to its unpadded
`size` first. BatchNorm in the backbone trains unless `frozen_bn=True` (use it with pretrained weights).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from boxer.errors import BoxerError
from boxer.models import register_model
from boxer.models.backbones import create_backbone
from boxer.models.backbones.base import Backbone

LOSS_NAMES = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


class BackboneWithFPN(nn.Module):
    """A boxer backbone (list of maps) + FPN -> torchvision's OrderedDict of 256-channel maps."""

    def __init__(self, body: Backbone, *, out_channels: int = 256) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            list(body.out_channels), out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body(x)  # fine to coarse
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


class _BatchOnly(GeneralizedRCNNTransform):
    """torchvision's transform without normalisation and resizing (boxer's pipeline did both)."""

    def normalize(self, image: Tensor) -> Tensor:
        return image

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        return image, target


class MaskRCNNDetector(nn.Module):
    """torchvision Mask R-CNN (or Faster R-CNN without masks) behind boxer's detector protocol.

    Args:
        backbone: a boxer backbone returning 4 maps (strides 4..32).
        num_classes: object classes C (background excluded).
        with_masks: Mask R-CNN (True) or Faster R-CNN (False).
        fpn_channels: FPN width.
        representation_size: width of the box head's two FC layers.
        mask_layers: channels of the mask head's 3x3 convs.
        loss_weights: factor per loss name (default 1 each).
        rcnn_kw: further keywords of torchvision's `MaskRCNN` (e.g. box_detections_per_img).
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        num_classes: int,
        with_masks: bool = True,
        fpn_channels: int = 256,
        representation_size: int = 1024,
        mask_layers: tuple[int, ...] = (256, 256, 256, 256),
        loss_weights: dict[str, float] | None = None,
        **rcnn_kw: Any,
    ) -> None:
        super().__init__()
        if len(backbone.out_channels) != 4:
            raise BoxerError(
                f"maskrcnn: the backbone must give 4 maps (strides 4..32), got {backbone.out_strides}"
            )
        self.num_classes, self.with_masks = num_classes, with_masks
        self.loss_weights = {name: 1.0 for name in LOSS_NAMES} | dict(loss_weights or {})
        heads: dict[str, nn.Module] = {
            "box_head": TwoMLPHead(fpn_channels * 7 * 7, representation_size),
            "box_predictor": FastRCNNPredictor(representation_size, num_classes + 1),
        }
        if with_masks:
            heads["mask_head"] = MaskRCNNHeads(fpn_channels, list(mask_layers), 1)
            heads["mask_predictor"] = MaskRCNNPredictor(mask_layers[-1], mask_layers[-1], num_classes + 1)
        detector = MaskRCNN if with_masks else FasterRCNN
        self.detector = detector(BackboneWithFPN(backbone, out_channels=fpn_channels), **heads, **rcnn_kw)
        self.detector.transform = _BatchOnly(800, 1333, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], size_divisible=32)

    # ---------------------------------------------------------------- inputs
    @staticmethod
    def _sizes(images: Tensor, pad_mask: Tensor | None, targets: list[dict]) -> list[tuple[int, int]]:
        """(h, w) of each image before padding: target["size"], else counted from pad_mask."""
        sizes = []
        for i, t in enumerate(targets):
            if "size" in t:
                h, w = (int(v) for v in t["size"])
            elif pad_mask is not None:
                h, w = int((~pad_mask[i]).any(1).sum()), int((~pad_mask[i]).any(0).sum())
            else:
                h, w = images.shape[-2:]
            sizes.append((h, w))
        return sizes

    def _tv_targets(self, targets: list[dict], sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """Contiguous labels 0..C-1 -> torchvision's 1..C; masks cut to the unpadded size."""
        out = []
        for t, (h, w) in zip(targets, sizes):
            tv = {"boxes": t["boxes"].float(), "labels": t["labels"].long() + 1}
            if self.with_masks:
                if "masks" not in t:
                    raise BoxerError(f"target of image {t.get('image_id', '?')}: Mask R-CNN needs 'masks'")
                tv["masks"] = t["masks"][:, :h, :w].to(torch.uint8)
            out.append(tv)
        return out

    # ---------------------------------------------------------------- protocol
    def forward(self, images: Tensor, pad_mask: Tensor | None, targets: list[dict]) -> dict[str, Tensor]:
        """Training losses (weighted) and their sum `loss`. Call in training mode."""
        if not self.training:
            raise ValueError("maskrcnn: forward computes training losses; use predict() for detections")
        sizes = self._sizes(images, pad_mask, targets)
        crops = [img[:, :h, :w] for img, (h, w) in zip(images, sizes)]
        raw = self.detector(crops, self._tv_targets(targets, sizes))
        losses = {k: v * self.loss_weights.get(k, 1.0) for k, v in raw.items()}
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def predict(self, images: Tensor, pad_mask: Tensor | None, targets: list[dict]) -> list[dict]:
        """Detections per image in original pixels (target["orig_size"]), labels 0..C-1."""
        sizes = self._sizes(images, pad_mask, targets)
        was_training = self.detector.training
        self.detector.eval()
        try:
            dets = self.detector([img[:, :h, :w] for img, (h, w) in zip(images, sizes)])
        finally:
            self.detector.train(was_training)
        return [self._to_original(d, t, size) for d, t, size in zip(dets, targets, sizes)]

    def _to_original(self, det: dict[str, Tensor], target: dict, size: tuple[int, int]) -> dict[str, Tensor]:
        h, w = size
        h0, w0 = (int(v) for v in target.get("orig_size", size))
        scale = det["boxes"].new_tensor([w0 / w, h0 / h, w0 / w, h0 / h])
        out = {"boxes": det["boxes"] * scale, "scores": det["scores"], "labels": det["labels"] - 1}
        if self.with_masks:
            probs = det["masks"]  # K, 1, h, w in [0, 1]
            if (h0, w0) != (h, w) and probs.numel():
                probs = F.interpolate(probs, size=(h0, w0), mode="bilinear", align_corners=False)
            out["masks"] = (
                probs[:, 0] > 0.5 if probs.numel() else probs.new_zeros(0, h0, w0, dtype=torch.bool)
            )
        return out

    def param_groups(self, lr: float, *, lr_backbone: float, lr_linear_box_mult: float = 0.1) -> list[dict]:
        """Backbone body at `lr_backbone`, FPN and heads at `lr` (no box-attention Linears here)."""
        body = [p for p in self.detector.backbone.body.parameters() if p.requires_grad]
        ids = {id(p) for p in body}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest, "lr": lr}, {"params": body, "lr": lr_backbone}]


def _create_maskrcnn(
    *,
    num_classes: int,
    backbone: str = "bot50",
    pretrained_backbone: bool | str = False,
    backbone_kwargs: dict[str, Any] | None = None,
    **kw: Any,
) -> MaskRCNNDetector:
    """Builds the backbone with 4 maps (C2-C5) and the detector around it."""
    bkw = {"out_indices": (1, 2, 3, 4), "frozen_bn": bool(pretrained_backbone), **(backbone_kwargs or {})}
    net = create_backbone(backbone, pretrained=pretrained_backbone, **bkw)
    return MaskRCNNDetector(net, num_classes=num_classes, **kw)


@register_model
def maskrcnn(**overrides: Any) -> MaskRCNNDetector:
    """Mask R-CNN + FPN on any backbone (`backbone=`, default bot50)."""
    return _create_maskrcnn(**overrides)


@register_model
def maskrcnn_bot50(**overrides: Any) -> MaskRCNNDetector:
    """Mask R-CNN with BoTNet-50 (position tables sized for 1024 x 1024 inputs, as in the paper)."""
    bkw = {"img_size": 1024, **overrides.pop("backbone_kwargs", {})}
    return _create_maskrcnn(**{"backbone": "bot50", "backbone_kwargs": bkw, **overrides})


@register_model
def maskrcnn_r50(**overrides: Any) -> MaskRCNNDetector:
    """Mask R-CNN with ResNet-50 (the same MixerResNet code without mixers)."""
    return _create_maskrcnn(**{"backbone": "resnet50_mx", **overrides})
