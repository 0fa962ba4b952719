"""Mask R-CNN (He et al., ICCV 2017) and Faster R-CNN (Ren et al., NeurIPS 2015) with an FPN
(Lin et al., CVPR 2017) over any boxer backbone, e.g. BoTNet-50 or ResNet-18.

BoTNet (Srinivas et al., CVPR 2021) evaluates BoT50 inside Mask R-CNN; this wraps torchvision's `MaskRCNN` /
`FasterRCNN` (RPN, RoIAlign, box and mask heads, losses, post-processing) around `create_backbone(name,
out_indices=(1, 2, 3, 4))` plus torchvision's `FeaturePyramidNetwork` (P2-P5 and a max-pooled P6), and
speaks the detector protocol of docs/CONTRACTS.md so that `boxer train --model maskrcnn_bot50` (or
`fasterrcnn_r18_fpn`), `boxer eval` and `boxer predict` work:

- `forward(images, pad_mask, targets)` (training): weighted losses `loss_classifier`, `loss_box_reg`,
  `loss_mask` (Mask R-CNN only), `loss_objectness`, `loss_rpn_box_reg` and their sum `loss`;
- `predict(images, pad_mask, targets)`: per image `boxes` xyxy in original pixels, `scores`,
  contiguous `labels`, and (Mask R-CNN) `masks` bool [K, h0, w0].

Our labels 0..C-1 become torchvision's 1..C (0 = background) and back. Deviations from torchvision's
defaults: images arrive already normalised and resized by boxer's data pipeline, so torchvision's
transform only batches them (no second normalisation or resize); each image is cut to its unpadded
`size` first. BatchNorm in the backbone trains unless `frozen_bn=True` (use it with pretrained weights).

`fasterrcnn_r18_fpn` is the small-image CPU contender of `boxer2d_r18_lite` (benchmarks/convergence.py),
set for FashionScenes' 256 x 256 scenes, whose items' boxes are about 15-200 px (mostly 20-120):

- anchors 16, 32, 64, 128, 256 px on P2..P6 (4x the level's stride; torchvision's 32..512 are 8x,
  made for COCO resized to 800 px, where a 16-px item would only be matched by a P2 anchor of twice
  its side), aspect ratios 0.5 / 1 / 2 (trousers are tall, sandals and bags wide);
- FPN width 128 and a 512-wide box head (torchvision: 256 and 1024), the width of the lite BoxeR
  (d 128); at 256 px the 256-wide FPN and RPN convs on the 64 x 64 P2 map would cost more than the
  ResNet-18 itself;
- fewer proposals, sized for <= 12 items per scene: RPN keeps 1000 / 500 per level before NMS and
  500 / 300 after it (train / test; torchvision 2000 / 1000 both), 256 sampled RoIs per image (512);
- frozen BatchNorm in the backbone whatever its weights (batch 4 is too small for BN statistics), as
  `boxer2d_r18_lite`; `pretrained_backbone=FILE` and `backbone_kwargs={'frozen_stages': 2}` work as
  there; 100 detections per image (BoxeR's `num_select`), score threshold 0.05 (torchvision's).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
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


def _to_float32(module: nn.Module, args: Any, output: Any) -> Any:
    """Forward hook: the output's tensors (in tuples and lists, as the RPN head returns) as float32."""
    if isinstance(output, Tensor):
        return output.float()
    return type(output)(_to_float32(module, args, o) for o in output)


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
        anchor_sizes: RPN anchor side in pixels per FPN level P2..P6 (torchvision's COCO default).
        aspect_ratios: anchor height / width ratios, the same on every level.
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
        anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        loss_weights: dict[str, float] | None = None,
        **rcnn_kw: Any,
    ) -> None:
        super().__init__()
        if len(backbone.out_channels) != 4:
            raise BoxerError(
                f"maskrcnn: the backbone must give 4 maps (strides 4..32), got {backbone.out_strides}"
            )
        if len(anchor_sizes) != 5:
            raise BoxerError(f"maskrcnn: anchor_sizes needs one size per level P2..P6, got {anchor_sizes}")
        self.num_classes, self.with_masks = num_classes, with_masks
        self.loss_weights = {name: 1.0 for name in LOSS_NAMES} | dict(loss_weights or {})
        heads: dict[str, nn.Module] = {
            "box_head": TwoMLPHead(fpn_channels * 7 * 7, representation_size),
            "box_predictor": FastRCNNPredictor(representation_size, num_classes + 1),
        }
        if with_masks:
            heads["mask_head"] = MaskRCNNHeads(fpn_channels, list(mask_layers), 1)
            heads["mask_predictor"] = MaskRCNNPredictor(mask_layers[-1], mask_layers[-1], num_classes + 1)
        ratios = tuple(float(r) for r in aspect_ratios)
        anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), (ratios,) * len(anchor_sizes))
        detector = MaskRCNN if with_masks else FasterRCNN
        self.detector = detector(
            BackboneWithFPN(backbone, out_channels=fpn_channels),
            **heads,
            rpn_anchor_generator=anchors,
            **rcnn_kw,
        )
        # Box deltas leave the heads in float32, so boxes are decoded in float32 under bf16 autocast
        # (bf16 steps by 1 px between 128 and 256 px).
        self.detector.rpn.head.register_forward_hook(_to_float32)
        self.detector.roi_heads.box_predictor.register_forward_hook(_to_float32)
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

    def param_groups(self, lr: float, *, lr_backbone: float) -> list[dict]:
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


# Faster R-CNN for small images (FashionScenes 256 px), see the module docstring.
R18_SMALL_IMAGES = {
    "backbone": "resnet18",
    "fpn_channels": 128,
    "representation_size": 512,
    "anchor_sizes": (16, 32, 64, 128, 256),
    "rpn_pre_nms_top_n_train": 1000,
    "rpn_pre_nms_top_n_test": 500,
    "rpn_post_nms_top_n_train": 500,
    "rpn_post_nms_top_n_test": 300,
    "box_batch_size_per_image": 256,
    "box_detections_per_img": 100,
}


def _boxes_only(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    if overrides.get("with_masks"):
        raise BoxerError(f"{name}: a boxes-only detector; use maskrcnn for masks")
    return {**overrides, "with_masks": False}


@register_model
def fasterrcnn(**overrides: Any) -> MaskRCNNDetector:
    """Faster R-CNN + FPN on any backbone (`backbone=`, default resnet50); torchvision's anchors and heads."""
    return _create_maskrcnn(**{"backbone": "resnet50", **_boxes_only("fasterrcnn", overrides)})


@register_model
def fasterrcnn_r18_fpn(**overrides: Any) -> MaskRCNNDetector:
    """Faster R-CNN + FPN on ResNet-18 (frozen BN), set for ~256-px images with 15-200 px objects."""
    bkw = {"frozen_bn": True, **overrides.pop("backbone_kwargs", {})}
    overrides = _boxes_only("fasterrcnn_r18_fpn", overrides)
    return _create_maskrcnn(**{**R18_SMALL_IMAGES, "backbone_kwargs": bkw, **overrides})
