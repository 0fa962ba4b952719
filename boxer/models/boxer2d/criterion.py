"""Set criterion of BoxeR-2D (spec 5.1, masks 2.4).

Per decoder layer, after Hungarian matching: sigmoid focal class loss over all queries and classes
(weight 2), L1 on cxcywh (5) and 1 - GIoU (2) over matched pairs, and with masks the per-pixel focal
and dice losses (5 / 5). Every term is summed and divided by num_boxes (the batch's GT count,
averaged over processes, at least 1). The last layer has no suffix, earlier layers `_0.._{L-2}`, and
the class-agnostic encoder output `_enc_0` (all valid encoder tokens, no mask loss).
Returned terms are weighted; `loss` is their sum.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from boxer.models.boxer2d.masks import dice_loss
from boxer.models.boxer2d.matcher import HungarianMatcher

DEFAULT_WEIGHTS = {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}

Indices = list[tuple[Tensor, Tensor]]


def layer_suffixes(num_layers: int) -> list[str]:
    """Loss-name suffix of each decoder layer: `_0.._{L-2}`, and none for the last."""
    return [f"_{i}" for i in range(num_layers - 1)] + [""]


def count_boxes(targets: list[dict], device: torch.device) -> float:
    """num_boxes: GT boxes in the batch, all-reduced and averaged over processes, at least 1."""
    n = torch.tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return max(float(n.item()), 1.0)


def batch_index(indices: Indices) -> tuple[Tensor, Tensor]:
    """(image index, query index) LongTensor[K] each, for gathering matched predictions."""
    b = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
    return b, torch.cat([q for q, _ in indices])


class SetCriterion(nn.Module):
    """Losses of a BoxeR-2D forward pass.

    Args:
        num_classes: classes of the decoder head.
        matcher: the Hungarian matcher (default costs 2 / 5 / 2).
        weights: loss weights by base name (defaults: `DEFAULT_WEIGHTS`).
        alpha: focal alpha.
        gamma: focal gamma.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        matcher: HungarianMatcher | None = None,
        weights: dict[str, float] | None = None,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher(alpha=alpha, gamma=gamma)
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.alpha, self.gamma = alpha, gamma

    def match(self, outputs: dict[str, Tensor], targets: list[dict]) -> tuple[list[Indices], Indices | None]:
        """Matches every decoder layer (`logits: Tensor[L, B, Q, C]`, `boxes: Tensor[L, B, Q, 4]`) and the
        encoder output (`enc_logits`, `enc_boxes`, `enc_valid`, if present) to the targets."""
        layers = [self.matcher(lg, bx, targets) for lg, bx in zip(outputs["logits"], outputs["boxes"])]
        if outputs.get("enc_logits") is None:
            return layers, None
        agnostic = [{"labels": torch.zeros_like(t["labels"]), "boxes": t["boxes"]} for t in targets]
        enc = self.matcher(outputs["enc_logits"], outputs["enc_boxes"], agnostic, outputs["enc_valid"])
        return layers, enc

    def forward(
        self,
        outputs: dict[str, Tensor],
        targets: list[dict],
        *,
        indices: tuple[list[Indices], Indices | None] | None = None,
        mask_logits: list[Tensor] | None = None,
        mask_targets: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses by name, plus `loss` (their sum).

        Args:
            outputs: `logits: Tensor[L, B, Q, C]`, `boxes: Tensor[L, B, Q, 4]` cxcywh; optionally
                `enc_logits: Tensor[B, S, 1]`, `enc_boxes: Tensor[B, S, 4]`, `enc_valid: Tensor[B, S]`.
            targets: normalised targets (`labels`, `boxes` cxcywh in [0, 1]).
            indices: the result of `match`, computed here if None.
            mask_logits: per decoder layer, Tensor[K, M, M] for the matched pairs of that layer in
                `batch_index` order (masks on).
            mask_targets: per decoder layer the matching Tensor[K, M, M] binary targets.
        """
        device = outputs["logits"].device
        layers, enc = indices if indices is not None else self.match(outputs, targets)
        num_boxes = count_boxes(targets, device)
        losses: dict[str, Tensor] = {}
        for i, suffix in enumerate(layer_suffixes(len(layers))):
            terms = self._det_losses(outputs["logits"][i], outputs["boxes"][i], targets, layers[i], num_boxes)
            if mask_logits is not None:
                terms.update(self._mask_losses(mask_logits[i], mask_targets[i], num_boxes))
            losses.update({k + suffix: v * self.weights[k] for k, v in terms.items()})
        if enc is not None:
            agnostic = [{"labels": torch.zeros_like(t["labels"]), "boxes": t["boxes"]} for t in targets]
            valid = outputs["enc_valid"]
            terms = self._det_losses(
                outputs["enc_logits"], outputs["enc_boxes"], agnostic, enc, num_boxes, valid
            )
            losses.update({k + "_enc_0": v * self.weights[k] for k, v in terms.items()})
        losses["loss"] = sum(losses.values())
        return losses

    def _det_losses(
        self,
        logits: Tensor,
        boxes: Tensor,
        targets: list[dict],
        indices: Indices,
        num_boxes: float,
        valid: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Unweighted class / L1 / GIoU losses of one layer: logits Tensor[B, Q, C], boxes Tensor[B, Q, 4]."""
        b, q = batch_index(indices)
        b, q = b.to(logits.device), q.to(logits.device)
        onehot = torch.zeros_like(logits)
        labels = torch.cat([t["labels"][j.to(t["labels"].device)] for t, (_, j) in zip(targets, indices)])
        onehot[b, q, labels.to(logits.device)] = 1
        if valid is not None:  # only valid encoder tokens take part
            logits, onehot = logits[valid], onehot[valid]
        loss_ce = sigmoid_focal_loss(logits.float(), onehot.float(), self.alpha, self.gamma, reduction="sum")
        src = boxes[b, q].float()  # K, 4
        tgt = torch.cat([t["boxes"][j.to(t["boxes"].device)] for t, (_, j) in zip(targets, indices)])
        tgt = tgt.reshape(-1, 4).to(src)
        loss_bbox = (src - tgt).abs().sum()
        xyxy = [box_convert(x, "cxcywh", "xyxy") for x in (src, tgt)]
        loss_giou = generalized_box_iou_loss(xyxy[0], xyxy[1], reduction="sum")
        return {
            "loss_ce": loss_ce / num_boxes,
            "loss_bbox": loss_bbox / num_boxes,
            "loss_giou": loss_giou / num_boxes,
        }

    def _mask_losses(self, logits: Tensor, targets: Tensor, num_boxes: float) -> dict[str, Tensor]:
        """Per-pixel-mean focal and dice losses over matched pairs: logits, targets Tensor[K, M, M]."""
        logits, targets = logits.float().flatten(1), targets.float().flatten(1)  # K, M*M
        focal = sigmoid_focal_loss(logits, targets, self.alpha, self.gamma, reduction="none").mean(1).sum()
        return {"loss_mask": focal / num_boxes, "loss_dice": dice_loss(logits, targets).sum() / num_boxes}
