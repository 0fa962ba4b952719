"""Hungarian matcher and set criterion of DETR (Carion et al., ECCV 2020, section 3.1 and appendix A.2).

Matching cost per (query, target) pair: -1 * softmax probability of the target class + 5 * L1 on
cxcywh boxes - 2 * GIoU. The per-image assignment, the `valid` mask and the sorting come from BoxeR's
`HungarianMatcher` (scipy's `linear_sum_assignment`); only the cost differs.

Losses per decoder layer, on the softmax over C classes + "no object" (the last logit):
- `loss_ce`: cross-entropy over all queries, unmatched queries labelled "no object", whose class
  weight is `eos_coef` (0.1); the mean is weighted by the class weights, as `F.cross_entropy` does;
- `loss_bbox`: L1 on cxcywh over matched pairs, `loss_giou`: 1 - GIoU, both summed and divided by
  num_boxes (the batch's GT count averaged over processes, at least 1).
Weights 1 / 5 / 2. The last layer has no suffix, earlier layers `_0.._{L-2}`; `loss` is the sum.
The official code's logged-only terms (class error, cardinality error) are not computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_convert, generalized_box_iou, generalized_box_iou_loss

from boxer.models.boxer2d.criterion import batch_index, count_boxes, layer_suffixes
from boxer.models.boxer2d.matcher import HungarianMatcher

DEFAULT_WEIGHTS = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}

Indices = list[tuple[Tensor, Tensor]]

# A finite stand-in for non-finite costs: a diverged model reaches the loss, which names the bad term.
_BAD_COST = 1e8


class DETRMatcher(HungarianMatcher):
    """One-to-one assignment with DETR's softmax class cost.

    Args:
        cost_class: weight of -prob[target class].
        cost_bbox: weight of the L1 cost on cxcywh boxes.
        cost_giou: weight of the negative generalised IoU.
    """

    def __init__(self, *, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0) -> None:
        super().__init__(cost_class=cost_class, cost_bbox=cost_bbox, cost_giou=cost_giou)

    def cost_matrix(self, logits: Tensor, boxes: Tensor, labels: Tensor, tgt_boxes: Tensor) -> Tensor:
        """Cost Tensor[Q, N] float32 between Q predictions (logits[Q, C+1], boxes[Q, 4]) and N targets."""
        logits, boxes, tgt_boxes = logits.float(), boxes.float(), tgt_boxes.float().to(boxes.device)
        prob = logits.softmax(-1)[:, labels.to(logits.device)]  # Q, N
        c_l1 = torch.cdist(boxes, tgt_boxes, p=1)  # Q, N
        giou = generalized_box_iou(
            box_convert(boxes, "cxcywh", "xyxy"), box_convert(tgt_boxes, "cxcywh", "xyxy")
        )
        cost = self.cost_bbox * c_l1 - self.cost_class * prob - self.cost_giou * giou
        return torch.nan_to_num(cost, nan=_BAD_COST, posinf=_BAD_COST, neginf=-_BAD_COST)


class DETRCriterion(nn.Module):
    """Losses of a DETR forward pass.

    Args:
        num_classes: object classes C (the head has C + 1 outputs, the last is "no object").
        matcher: the matcher (default: costs 1 / 5 / 2).
        weights: loss weights by base name (defaults: `DEFAULT_WEIGHTS`).
        eos_coef: class weight of "no object" in the cross-entropy.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        matcher: DETRMatcher | None = None,
        weights: dict[str, float] | None = None,
        eos_coef: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or DETRMatcher()
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.eos_coef = eos_coef
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = eos_coef
        self.register_buffer("class_weight", class_weight, persistent=False)

    def match(self, outputs: dict[str, Tensor], targets: list[dict]) -> list[Indices]:
        """Matches every decoder layer (`logits: Tensor[L, B, Q, C+1]`, `boxes: Tensor[L, B, Q, 4]`)."""
        return [self.matcher(lg, bx, targets) for lg, bx in zip(outputs["logits"], outputs["boxes"])]

    def forward(
        self, outputs: dict[str, Tensor], targets: list[dict], *, indices: list[Indices] | None = None
    ) -> dict[str, Tensor]:
        """Weighted losses by name, plus `loss` (their sum).

        Args:
            outputs: `logits: Tensor[L, B, Q, C+1]`, `boxes: Tensor[L, B, Q, 4]` cxcywh in [0, 1].
            targets: normalised targets (`labels`, `boxes` cxcywh in [0, 1]).
            indices: the result of `match`, computed here if None.
        """
        indices = indices if indices is not None else self.match(outputs, targets)
        num_boxes = count_boxes(targets, outputs["logits"].device)
        losses: dict[str, Tensor] = {}
        for i, suffix in enumerate(layer_suffixes(len(indices))):
            terms = self.layer_losses(
                outputs["logits"][i], outputs["boxes"][i], targets, indices[i], num_boxes
            )
            losses.update({k + suffix: v * self.weights[k] for k, v in terms.items()})
        losses["loss"] = sum(losses.values())
        return losses

    def layer_losses(
        self, logits: Tensor, boxes: Tensor, targets: list[dict], indices: Indices, num_boxes: float
    ) -> dict[str, Tensor]:
        """Unweighted losses of one layer: logits Tensor[B, Q, C+1], boxes Tensor[B, Q, 4] cxcywh."""
        b, q = batch_index(indices)
        b, q = b.to(logits.device), q.to(logits.device)
        labels = torch.cat([t["labels"][j.to(t["labels"].device)] for t, (_, j) in zip(targets, indices)])
        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long, device=logits.device)
        classes[b, q] = labels.to(logits.device)  # B, Q; unmatched = "no object"
        weight = self.class_weight.to(logits.device)
        loss_ce = F.cross_entropy(logits.float().transpose(1, 2), classes, weight)
        src = boxes[b, q].float()  # K, 4
        tgt = torch.cat([t["boxes"][j.to(t["boxes"].device)] for t, (_, j) in zip(targets, indices)])
        tgt = tgt.reshape(-1, 4).to(src)
        xyxy = [box_convert(x, "cxcywh", "xyxy") for x in (src, tgt)]
        return {
            "loss_ce": loss_ce,
            "loss_bbox": (src - tgt).abs().sum() / num_boxes,
            "loss_giou": generalized_box_iou_loss(xyxy[0], xyxy[1], reduction="sum") / num_boxes,
        }
