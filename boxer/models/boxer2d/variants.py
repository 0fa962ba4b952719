"""Registered BoxeR-2D variants (`boxer.create_model(name, **overrides)`).

| name | backbone | enc+dec | d | FFN | queries | masks |
|---|---|---|---|---|---|---|
| `boxer2d` | resnet50 (any via `backbone=`) | 6+6 | 256 | 1024 | 300 | off |
| `boxer2d_r50`, `boxer2d_r101` | torchvision ResNet-50/101, frozen BN | 6+6 | 256 | 1024 | 300 | off |
| `boxer2d_r50_mask`, `boxer2d_r101_mask` | same | 6+6 | 256 | 1024 | 300 | residual v1 |
| `boxer2d_r18_lite` | ResNet-18, frozen BN | 3+3 | 128 | 512 | 100 | off |
| `boxer2d_r18_lite_mask` | same | 3+3 | 128 | 512 | 100 | residual v2 |

The lite variants are the CPU models of the demo: fewer layers, a narrower transformer (8 heads of
16 channels) and 100 queries. Every keyword of `_create_boxer2d` can be overridden, e.g.
`create_model("boxer2d_r50", num_classes=10, backbone="timm:resnet18", dec_layers=3)`.

`class_head="text"` gives any variant the open-vocabulary class head of `text_head.py` (OWL-ViT's);
it needs `class_names` (encoded by `text_encoder`, e.g. with the `boxer[text]` extra) or the cached
`text_embeddings` of a checkpoint (docs/open_vocabulary.md).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from boxer.errors import BoxerError
from boxer.models import register_model
from boxer.models.backbones import create_backbone
from boxer.models.boxer2d.criterion import SetCriterion
from boxer.models.boxer2d.denoising import DenoisingGenerator
from boxer.models.boxer2d.matcher import HungarianMatcher
from boxer.models.boxer2d.model import BoxeR2D
from boxer.models.boxer2d.one_to_many import OneToManyBranch
from boxer.models.boxer2d.text_head import TextClassHead
from boxer.models.boxer2d.transformer import BoxTransformer

PAPER = {"dim": 256, "enc_layers": 6, "dec_layers": 6, "ffn_dim": 1024, "num_queries": 300}
LITE = {
    "backbone": "resnet18",
    "dim": 128,
    "enc_layers": 3,
    "dec_layers": 3,
    "ffn_dim": 512,
    "num_queries": 100,
}


def _create_boxer2d(
    *,
    backbone: str = "resnet50",
    pretrained_backbone: bool | str = False,
    backbone_kwargs: dict[str, Any] | None = None,
    num_classes: int = 80,
    num_queries: int = 300,
    dim: int = 256,
    num_heads: int = 8,
    num_levels: int = 4,
    enc_layers: int = 6,
    dec_layers: int = 6,
    ffn_dim: int = 1024,
    grid_size: int = 2,
    with_masks: bool = False,
    mask_grid: int = 14,
    residual_mode: str = "v1",
    aux_loss: bool = True,
    num_select: int = 100,
    nms_iou: float | None = None,
    o2m_topk: int = 0,
    o2m_enc_topk: int = 0,
    dn_groups: int = 0,
    dn_box_noise: float = 0.4,
    dn_label_noise: float = 0.2,
    dn_negatives: bool = False,
    iou_aware: bool = False,
    iou_aware_cost: bool = False,
    enc_class_aware: bool = False,
    box_refine: bool = False,
    class_head: str = "linear",
    class_names: list[str] | None = None,
    text_encoder: str = "minilm",
    text_prompt: str = "{name}",
    text_embeddings: Tensor | None = None,
    lr_linear_box_mult: float = 0.1,
    checkpoint_layers: bool = False,
    checkpoint_backbone: bool = False,
    channels_last: bool = True,
) -> BoxeR2D:
    """Builds a BoxeR-2D from keywords only.

    Args:
        backbone: a registered backbone name (`boxer.models.backbones.list_backbones()`) or `timm:<name>`.
        pretrained_backbone: False, True (the backbone's ImageNet weights), or a path to a state dict.
        backbone_kwargs: further backbone keywords (e.g. `out_indices`, `frozen_bn`).
        num_classes: object classes.
        num_queries: decoder queries (two-stage proposals).
        dim: transformer width.
        num_heads: attention heads.
        num_levels: feature levels (backbone levels + stride-2 extra levels).
        enc_layers: encoder layers.
        dec_layers: decoder layers.
        ffn_dim: FFN hidden width.
        grid_size: box-attention grid side.
        with_masks: instance segmentation (instance-attention decoder and mask head).
        mask_grid: instance-attention grid side (masks are 2x this).
        residual_mode: mask-feature residual "v1" (FFN per cell) or "v2" (low memory).
        aux_loss: losses on every decoder layer and the encoder output.
        num_select: detections per image at inference.
        nms_iou: class-wise NMS of those detections at this IoU, or None (the paper's: no NMS).
        o2m_topk: one-to-many supervision of the decoder queries (MS-DETR), positives per ground
            truth; 0 = off (docs/training.md, "Training accelerations").
        o2m_enc_topk: one-to-many supervision of the encoder proposals: top-k tokens per ground
            truth by IoU instead of one Hungarian match; 0 = off.
        dn_groups: denoising query groups (DN-DETR / DINO); 0 = off.
        dn_box_noise: denoising box noise (corner shift in half box sizes).
        dn_label_noise: probability of a flipped label in a denoising query.
        dn_negatives: DINO's contrastive negative denoising queries.
        iou_aware: IoU-aware (MAL) class loss.
        iou_aware_cost: IoU-aware (position-modulated) class cost in the Hungarian matching.
        enc_class_aware: the encoder's proposal head predicts the classes (ranked by the best class
            score, trained with the class labels) instead of one class-agnostic score.
        box_refine: iterative box refinement (Deformable DETR's): each decoder layer attends through
            the previous layer's detached predicted boxes instead of the shared proposal windows.
        class_head: "linear" (the paper's) or "text" (OWL-ViT's scaled cosine similarity with the
            text embeddings of the class names; box models with a class-agnostic encoder only).
        class_names: the training classes' names (text head), encoded with `text_encoder` and
            `text_prompt`; the training engine passes the dataset's.
        text_encoder: a registered text encoder (`boxer.models.text`), "minilm" needs `boxer[text]`.
        text_prompt: the prompt of a class, e.g. "a photo of a {name}".
        text_embeddings: Tensor[num_classes, E], the text head's cached embeddings (checkpoint
            loading; no encoder needed), instead of `class_names`.
        lr_linear_box_mult: learning-rate factor of the window-offset Linears (0.1, the official code's).
        checkpoint_layers: activation checkpointing of the encoder and decoder layers in training:
            less memory for about one more forward of those layers, same losses and gradients.
        checkpoint_backbone: the same for the backbone's stages (ResNet backbones:
            `checkpoint_stages`).
        channels_last: the backbone sees channels-last images (faster convolutions; `BoxeR2D`).
    """
    head = _class_head(class_head, dim, num_classes, class_names, text_encoder, text_prompt, text_embeddings)
    if head is not None and (with_masks or enc_class_aware):
        raise BoxerError("class_head='text': box models with a class-agnostic encoder only (no masks, "
                         "no enc_class_aware)")  # fmt: skip
    backbone_kwargs = dict(backbone_kwargs or {})
    if checkpoint_backbone:
        backbone_kwargs["checkpoint_stages"] = True  # a ResNet keyword (boxer/models/backbones/resnet.py)
    net = create_backbone(backbone, pretrained=pretrained_backbone, **backbone_kwargs)
    transformer = BoxTransformer(
        dim,
        num_heads=num_heads,
        num_levels=num_levels,
        enc_layers=enc_layers,
        dec_layers=dec_layers,
        ffn_dim=ffn_dim,
        grid_size=grid_size,
        with_masks=with_masks,
        mask_grid=mask_grid,
        residual_mode=residual_mode,
        enc_classes=num_classes if enc_class_aware else 1,
        box_refine=box_refine,
        checkpoint_layers=checkpoint_layers,
    )
    criterion = SetCriterion(
        num_classes,
        matcher=HungarianMatcher(iou_aware=iou_aware_cost),
        o2m_topk=o2m_topk,
        o2m_enc_topk=o2m_enc_topk,
        iou_aware=iou_aware,
        enc_class_aware=enc_class_aware,
    )
    one_to_many = OneToManyBranch(dim, ffn_dim=ffn_dim, num_layers=dec_layers) if o2m_topk else None
    denoising = None
    if dn_groups:
        denoising = DenoisingGenerator(
            dim,
            num_classes,
            groups=dn_groups,
            box_noise=dn_box_noise,
            label_noise=dn_label_noise,
            negatives=dn_negatives,
        )
    return BoxeR2D(
        net,
        transformer,
        num_classes=num_classes,
        num_queries=num_queries,
        aux_loss=aux_loss,
        num_select=num_select,
        nms_iou=nms_iou,
        criterion=criterion,
        one_to_many=one_to_many,
        denoising=denoising,
        class_head=head,
        lr_linear_box_mult=lr_linear_box_mult,
        channels_last=channels_last,
    )


def _class_head(kind, dim, num_classes, class_names, encoder, prompt, embeddings) -> TextClassHead | None:
    """None for the Linear, else the text head over the cached embeddings or the encoded names."""
    if kind not in ("linear", "text"):
        raise BoxerError(f"class_head: expected 'linear' or 'text', got {kind!r}")
    if kind == "linear":
        return None
    if embeddings is None:
        if class_names is None:
            raise BoxerError("class_head='text': needs class_names (or a checkpoint's text_embeddings)")
        if len(class_names) != num_classes:
            raise BoxerError(f"class_names: {len(class_names)} names for num_classes={num_classes}")
        from boxer.models.text import encode_prompts

        embeddings = encode_prompts(list(class_names), encoder=encoder, template=prompt)
    if embeddings.shape[0] != num_classes:
        raise BoxerError(f"text_embeddings: {embeddings.shape[0]} rows for num_classes={num_classes}")
    return TextClassHead(dim, embeddings)


@register_model
def boxer2d(**overrides: Any) -> BoxeR2D:
    """BoxeR-2D with paper defaults on any backbone (`backbone=`, default resnet50)."""
    return _create_boxer2d(**{**PAPER, **overrides})


@register_model
def boxer2d_r50(**overrides: Any) -> BoxeR2D:
    """BoxeR-2D R50: the paper's detector (6+6 layers, d 256, 300 queries)."""
    return _create_boxer2d(**{**PAPER, "backbone": "resnet50", **overrides})


@register_model
def boxer2d_r101(**overrides: Any) -> BoxeR2D:
    """BoxeR-2D R101: the paper's detector on ResNet-101."""
    return _create_boxer2d(**{**PAPER, "backbone": "resnet101", **overrides})


@register_model
def boxer2d_r18_lite(**overrides: Any) -> BoxeR2D:
    """CPU variant: ResNet-18, 3+3 layers, d 128, FFN 512, 100 queries."""
    return _create_boxer2d(**{**LITE, **overrides})


@register_model
def boxer2d_r50_mask(**overrides: Any) -> BoxeR2D:
    """BoxeR-2D R50 with instance segmentation (residual v1, as the paper's R50 3x)."""
    return _create_boxer2d(**{**PAPER, "backbone": "resnet50", "with_masks": True, **overrides})


@register_model
def boxer2d_r101_mask(**overrides: Any) -> BoxeR2D:
    """BoxeR-2D R101 with instance segmentation (residual v1)."""
    return _create_boxer2d(**{**PAPER, "backbone": "resnet101", "with_masks": True, **overrides})


@register_model
def boxer2d_r18_lite_mask(**overrides: Any) -> BoxeR2D:
    """CPU variant with instance segmentation; residual v2 (low memory) by default."""
    return _create_boxer2d(**{**LITE, "with_masks": True, "residual_mode": "v2", **overrides})
