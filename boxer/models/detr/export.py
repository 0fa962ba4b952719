"""DETR's export wrapper: inference and post-processing as one traceable module (docs/export.md).

Inputs and outputs as BoxeR-2D's (boxer/models/boxer2d/export.py), K = num_queries: one detection
per query, its best real class (softmax without the no-object column), boxes xyxy in original
pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert


class DETRExport(nn.Module):
    """DETR inference: one detection per query (best real class), boxes in original pixels."""

    kind = "detr"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, orig_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, boxes = self.model.heads(self.model._decode(images, None)[-1])  # B, Q, C+1 / B, Q, 4
        scores, labels = logits.float().softmax(-1)[..., :-1].max(-1)  # B, Q
        xyxy = box_convert(boxes.float(), "cxcywh", "xyxy").clamp(0, 1)
        h0, w0 = orig_sizes[:, 0, None].float(), orig_sizes[:, 1, None].float()
        return xyxy * torch.stack((w0, h0, w0, h0), dim=-1), scores, labels
