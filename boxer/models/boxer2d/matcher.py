"""Hungarian matcher of BoxeR-2D (BoxeR, Nguyen et al., CVPR 2022; docs/boxer2d.md, "Files"), as in DETR /
Deformable DETR.

Cost = 2 * focal class cost + 5 * L1 (cxcywh) + 2 * (-GIoU), computed in float32 with autocast off,
solved per image with scipy's `linear_sum_assignment`. Masks are not part of the cost.

`iou_aware=True` (a training acceleration, off in the paper's recipe; docs/training.md) uses Stable-DINO's
position-modulated class cost: the class probability p in the focal cost becomes p * ((1 + GIoU) / 2) **
0.5, so a query that scores the class but sits far from the box is a worse match.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou

# A finite stand-in for non-finite costs, so a diverged model reaches the loss (which names the
# non-finite term) instead of failing inside scipy.
_BAD_COST = 1e8


class HungarianMatcher:
    """One-to-one assignment of predictions to targets.

    Args:
        cost_class: weight of the focal class cost.
        cost_bbox: weight of the L1 cost on cxcywh boxes.
        cost_giou: weight of the negative generalised IoU.
        alpha: focal alpha.
        gamma: focal gamma.
        iou_aware: position-modulated class cost (Stable-DINO).
    """

    def __init__(
        self,
        *,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
        iou_aware: bool = False,
    ) -> None:
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma, self.iou_aware = alpha, gamma, iou_aware

    @torch.no_grad()
    def __call__(
        self, logits: Tensor, boxes: Tensor, targets: list[dict[str, Tensor]], valid: Tensor | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """Matches every image.

        Args:
            logits: Tensor[B, Q, C] class logits.
            boxes: Tensor[B, Q, 4] cxcywh normalised.
            targets: per image `labels: Tensor[N]` and `boxes: Tensor[N, 4]` cxcywh normalised.
            valid: Tensor[B, Q] bool, or None; predictions with False are never matched.

        Returns:
            Per image (query indices, target indices), LongTensor[K] each on CPU, K = min(valid Q, N),
            sorted by query index.
        """
        with torch.autocast(logits.device.type, enabled=False):
            return [
                self._match_one(logits[b], boxes[b], t, None if valid is None else valid[b])
                for b, t in enumerate(targets)
            ]

    def _match_one(self, logits: Tensor, boxes: Tensor, target: dict[str, Tensor], valid: Tensor | None):
        empty = torch.empty(0, dtype=torch.long)
        rows = None if valid is None else valid.nonzero()[:, 0]
        if rows is not None:
            logits, boxes = logits[rows], boxes[rows]
        if len(target["labels"]) == 0 or len(boxes) == 0:
            return empty, empty
        cost = self.cost_matrix(logits, boxes, target["labels"], target["boxes"])
        q, t = linear_sum_assignment(cost.cpu().numpy())
        q, t = torch.as_tensor(q, dtype=torch.long), torch.as_tensor(t, dtype=torch.long)
        if rows is not None:
            q = rows.cpu()[q]
        order = torch.argsort(q)
        return q[order], t[order]

    def cost_matrix(self, logits: Tensor, boxes: Tensor, labels: Tensor, tgt_boxes: Tensor) -> Tensor:
        """Cost Tensor[Q, N] float32 between Q predictions (logits[Q, C], boxes[Q, 4]) and N targets."""
        logits, boxes, tgt_boxes = logits.float(), boxes.float(), tgt_boxes.float().to(boxes.device)
        giou = generalized_box_iou(
            box_convert(boxes, "cxcywh", "xyxy"), box_convert(tgt_boxes, "cxcywh", "xyxy")
        )  # Q, N
        p = logits[:, labels].sigmoid()  # Q, N
        if self.iou_aware:
            p = p * ((1 + giou) / 2).clamp(min=0).sqrt()
        pos = self.alpha * (1 - p) ** self.gamma * -(p + 1e-8).log()
        neg = (1 - self.alpha) * p**self.gamma * -(1 - p + 1e-8).log()
        c_l1 = torch.cdist(boxes, tgt_boxes, p=1)  # Q, N
        cost = self.cost_bbox * c_l1 + self.cost_class * (pos - neg) - self.cost_giou * giou
        return torch.nan_to_num(cost, nan=_BAD_COST, posinf=_BAD_COST, neginf=-_BAD_COST)
