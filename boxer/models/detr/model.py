"""DETR (Carion et al., "End-to-End Object Detection with Transformers", ECCV 2020).

`DETR(backbone, transformer, *, num_classes, ...)` implements the detector protocol of
docs/CONTRACTS.md: `forward` returns weighted losses (incl. `loss`), `predict` returns one detection
per query in original image pixels, `param_groups` the optimiser groups (backbone, the rest).

The backbone's last (coarsest) map is projected by a 1x1 conv to the transformer width; the padding
mask is nearest-resized to it. The heads are shared by all decoder layers: a Linear to C + 1 class
logits (the last is "no object") and a 3-layer MLP to sigmoid cxcywh boxes, normalised to the
unpadded image. Post-processing as in the paper: softmax, then per query the best real class and its
probability; no NMS, no top-k across queries.

Deviations from the official code: contiguous labels 0..C-1 with "no object" at index C (the official
code sizes the head by the largest COCO category id); boxes are clipped to the image, as BoxeR-2D's
post-processing does; at inference only the last decoder layer goes through the heads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from boxer.errors import BoxerError
from boxer.models.backbones.base import Backbone
from boxer.models.boxer2d.blocks import MLP
from boxer.models.boxer2d.neck import level_masks
from boxer.models.boxer2d.postprocess import boxes_to_original
from boxer.models.boxer2d.targets import normalise_targets
from boxer.models.detr.criterion import DETRCriterion
from boxer.models.detr.transformer import DETRTransformer


class DETR(nn.Module):
    """DETR detector.

    Args:
        backbone: feature extractor (`boxer.models.backbones` API); its last map is used.
        transformer: the encoder-decoder.
        num_classes: object classes C (labels 0..C-1; the head adds "no object").
        num_queries: learned object queries, i.e. detections per image.
        aux_loss: supervise every decoder layer, not only the last.
        criterion: the set criterion (default: `DETRCriterion(num_classes)`, the paper's weights).
    """

    def __init__(
        self,
        backbone: Backbone,
        transformer: DETRTransformer,
        *,
        num_classes: int,
        num_queries: int = 100,
        aux_loss: bool = True,
        criterion: DETRCriterion | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1 or num_queries < 1:
            raise BoxerError(f"num_classes and num_queries must be >= 1, got {num_classes} and {num_queries}")
        self.num_classes, self.num_queries, self.aux_loss = num_classes, num_queries, aux_loss
        self.with_masks = False
        dim = transformer.dim
        self.backbone = backbone
        self.input_proj = nn.Conv2d(backbone.out_channels[-1], dim, kernel_size=1)
        self.transformer = transformer
        self.query_embed = nn.Embedding(num_queries, dim)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.bbox_embed = MLP(dim, dim, 4, num_layers=3)
        self.criterion = criterion or DETRCriterion(num_classes)

    def _decode(self, images: Tensor, pad_mask: Tensor | None) -> Tensor:
        """Decoder states Tensor[L, B, Q, d] of every layer."""
        feat = self.backbone(images)[-1]  # B, C_last, H/s, W/s
        masks = level_masks(pad_mask, [feat.shape[-2:]])
        return self.transformer(self.input_proj(feat), masks[0] if masks else None, self.query_embed.weight)

    def heads(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """states Tensor[..., Q, d] -> class logits Tensor[..., Q, C+1], boxes Tensor[..., Q, 4] cxcywh."""
        return self.class_embed(states), self.bbox_embed(states).sigmoid()

    def forward(self, images: Tensor, pad_mask: Tensor | None, targets: list[dict]) -> dict[str, Tensor]:
        """Weighted training losses.

        Args:
            images: Tensor[B, 3, H, W] normalised, zero-padded bottom-right.
            pad_mask: Tensor[B, H, W] bool, True = padding (or None).
            targets: per image, the dataset contract (`boxes` xyxy pixels of the transformed image,
                `labels`, `size`).

        Returns:
            `loss_ce`, `loss_bbox`, `loss_giou`, with `_i` per auxiliary decoder layer, and `loss`.
        """
        norm = normalise_targets(targets, self.num_classes, images.device)
        states = self._decode(images, pad_mask)
        if not self.aux_loss:
            states = states[-1:]
        logits, boxes = self.heads(states)  # L, B, Q, C+1 / L, B, Q, 4
        return self.criterion({"logits": logits, "boxes": boxes}, norm)

    @torch.no_grad()
    def predict(self, images: Tensor, pad_mask: Tensor | None, targets: list[dict]) -> list[dict]:
        """One detection per query and image.

        Args:
            images, pad_mask: as in `forward`.
            targets: per image `orig_size` (h0, w0); boxes are not needed.

        Returns:
            per image `boxes: Tensor[Q, 4]` xyxy in original pixels (clipped), `scores: Tensor[Q]` (the
            softmax probability of the best real class), `labels: Tensor[Q]` in 0..C-1.
        """
        for i, t in enumerate(targets):
            if "orig_size" not in t:
                raise BoxerError(f"target of image id {t.get('image_id', i)}: needs 'orig_size' (h0, w0)")
        logits, boxes = self.heads(self._decode(images, pad_mask)[-1])  # B, Q, C+1 / B, Q, 4
        scores, labels = logits.float().softmax(-1)[..., :-1].max(-1)  # B, Q
        return [
            {
                "boxes": boxes_to_original(boxes[b].float(), t["orig_size"]),
                "scores": scores[b],
                "labels": labels[b],
            }
            for b, t in enumerate(targets)
        ]

    def param_groups(self, lr: float, *, lr_backbone: float) -> list[dict]:
        """Optimiser groups: backbone at `lr_backbone`, the rest at `lr` (DETR has no window-offset
        Linears). Frozen parameters are left out."""
        groups: dict[str, list] = {"backbone": [], "rest": []}
        for name, p in self.named_parameters():
            if p.requires_grad:
                groups["backbone" if name.startswith("backbone.") else "rest"].append(p)
        lrs = {"backbone": lr_backbone, "rest": lr}
        return [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]

    def export_wrapper(self) -> nn.Module:
        """The module `boxer export` traces: inference plus post-processing (detr/export.py)."""
        from boxer.models.detr.export import DETRExport

        return DETRExport(self)
