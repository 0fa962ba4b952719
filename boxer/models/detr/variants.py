"""Registered DETR variants (`boxer.create_model(name, **overrides)`).

| name | backbone | map | enc+dec | d | FFN | queries | dropout |
|---|---|---|---|---|---|---|---|
| `detr` | resnet50 (any via `backbone=`) | the backbone's last | 6+6 | 256 | 2048 | 100 | 0.1 |
| `detr_r50` | torchvision ResNet-50, frozen BN | C5 (stride 32) | 6+6 | 256 | 2048 | 100 | 0.1 |
| `detr_r18_lite` | ResNet-18, frozen BN | C5 (stride 32) | 3+3 | 128 | 512 | 100 | 0.1 |

`detr_r50` is the paper's configuration (8 heads, post-norm, auxiliary decoding losses, "no object"
weight 0.1, matcher and loss weights 1 / 5 / 2). `detr_r18_lite` is the CPU size of
`boxer2d_r18_lite` (8 heads of 16 channels). The R50 and R18 variants build the ResNet with
`out_indices=(4,)`; `backbone_kwargs` given as an override are merged into that, e.g.
`create_model("detr_r18_lite", backbone_kwargs={"frozen_stages": 2})`. Every keyword of `_create_detr`
can be overridden, e.g. `create_model("detr_r50", num_classes=10, dec_layers=3)`.
"""

from __future__ import annotations

from typing import Any

from boxer.models import register_model
from boxer.models.backbones import create_backbone
from boxer.models.detr.criterion import DETRCriterion, DETRMatcher
from boxer.models.detr.model import DETR
from boxer.models.detr.transformer import DETRTransformer

PAPER = {"dim": 256, "enc_layers": 6, "dec_layers": 6, "ffn_dim": 2048, "num_queries": 100}
LITE = {
    "backbone": "resnet18",
    "dim": 128,
    "enc_layers": 3,
    "dec_layers": 3,
    "ffn_dim": 512,
    "num_queries": 100,
}


def _create_detr(
    *,
    backbone: str = "resnet50",
    pretrained_backbone: bool | str = False,
    backbone_kwargs: dict[str, Any] | None = None,
    num_classes: int = 80,
    num_queries: int = 100,
    dim: int = 256,
    num_heads: int = 8,
    enc_layers: int = 6,
    dec_layers: int = 6,
    ffn_dim: int = 2048,
    dropout: float = 0.1,
    aux_loss: bool = True,
    eos_coef: float = 0.1,
    cost_class: float = 1.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
    loss_weights: dict[str, float] | None = None,
) -> DETR:
    """Builds a DETR from keywords only.

    Args:
        backbone: a registered backbone name (`boxer.models.backbones.list_backbones()`) or `timm:<name>`.
        pretrained_backbone: False, True (the backbone's ImageNet weights), or a path to a state dict.
        backbone_kwargs: further backbone keywords (e.g. `out_indices`, `frozen_stages`, `frozen_bn`).
        num_classes: object classes.
        num_queries: learned object queries.
        dim: transformer width.
        num_heads: attention heads.
        enc_layers: encoder layers.
        dec_layers: decoder layers.
        ffn_dim: FFN hidden width.
        dropout: transformer dropout.
        aux_loss: losses on every decoder layer, not only the last.
        eos_coef: class weight of "no object" in the cross-entropy.
        cost_class: matcher weight of -prob[target class].
        cost_bbox: matcher weight of the L1 box cost.
        cost_giou: matcher weight of -GIoU.
        loss_weights: loss weights by base name (`loss_ce`, `loss_bbox`, `loss_giou`; default 1 / 5 / 2).
    """
    net = create_backbone(backbone, pretrained=pretrained_backbone, **(backbone_kwargs or {}))
    transformer = DETRTransformer(
        dim,
        num_heads=num_heads,
        enc_layers=enc_layers,
        dec_layers=dec_layers,
        ffn_dim=ffn_dim,
        dropout=dropout,
    )
    matcher = DETRMatcher(cost_class=cost_class, cost_bbox=cost_bbox, cost_giou=cost_giou)
    criterion = DETRCriterion(num_classes, matcher=matcher, weights=loss_weights, eos_coef=eos_coef)
    return DETR(
        net,
        transformer,
        num_classes=num_classes,
        num_queries=num_queries,
        aux_loss=aux_loss,
        criterion=criterion,
    )


def _c5_only(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides with `backbone_kwargs` merged over `out_indices=(4,)` (C5, stride 32)."""
    return {**overrides, "backbone_kwargs": {"out_indices": (4,), **(overrides.get("backbone_kwargs") or {})}}


@register_model
def detr(**overrides: Any) -> DETR:
    """DETR with paper defaults on any backbone (`backbone=`, default resnet50), on its last map."""
    return _create_detr(**{**PAPER, **overrides})


@register_model
def detr_r50(**overrides: Any) -> DETR:
    """DETR R50: the paper's detector (C5, 6+6 layers, d 256, FFN 2048, 100 queries)."""
    return _create_detr(**{**PAPER, "backbone": "resnet50", **_c5_only(overrides)})


@register_model
def detr_r18_lite(**overrides: Any) -> DETR:
    """CPU variant: ResNet-18 C5, 3+3 layers, d 128, FFN 512, 100 queries."""
    return _create_detr(**{**LITE, **_c5_only(overrides)})
