"""Set criterion of BoxeR-2D (BoxeR, Nguyen et al., CVPR 2022; docs/boxer2d.md, "Losses").

Per decoder layer, after Hungarian matching: sigmoid focal class loss over all queries and classes
(weight 2), L1 on cxcywh (5) and 1 - GIoU (2) over matched pairs, and with masks the per-pixel focal
and dice losses (5 / 5). Every term is summed and divided by num_boxes (the batch's GT count,
averaged over processes, at least 1). The last layer has no suffix, earlier layers `_0.._{L-2}`, and
the class-agnostic encoder output `_enc_0` (all valid encoder tokens, no mask loss).
Returned terms are weighted; `loss` is their sum.

Training accelerations (each off by default, so the paper presets are the paper's criterion;
docs/training.md, "Training accelerations"):
- `o2m_topk` / `o2m_enc_topk`: one-to-many losses (MS-DETR, `one_to_many.py`). Decoder: the outputs
  `o2m_logits` / `o2m_boxes` of the auxiliary branch, each ground truth assigned to its top-k queries
  by 0.3 p(class) + 0.7 IoU, terms `<name>_o2m<layer suffix>`. Encoder: the `_enc_0` terms use the
  top-k tokens per ground truth by IoU instead of the Hungarian match. Both are divided by the pair
  count (`per_target`), not num_boxes: a branch k times heavier than the one-to-one loss sets the
  direction of every (clipped, Adam-normalised) update (measured on the FashionScenes tuning set with
  every acceleration on and k = 4: the o2m terms were ~4.5x the rest and AP50 at 400 iterations fell
  from 0.24 to 0.17).
- denoising (`dn_logits`, `dn_boxes`, `dn_gt`, `dn_positive` in the outputs, `denoising.py`): terms
  `<name>_dn<layer suffix>`, divided by num_boxes x groups.
- `enc_class_aware`: the encoder output `_enc_0` is matched and trained with the class labels (its
  head then has one output per class) instead of one class-agnostic label.
- `iou_aware`: the class loss of every branch becomes DEIM's matchability-aware loss (MAL): a
  positive's target is IoU^gamma (detached) with weight 1, a negative's weight is p^gamma.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_convert, box_iou, generalized_box_iou_loss, sigmoid_focal_loss

from boxer.models.boxer2d.masks import dice_loss
from boxer.models.boxer2d.matcher import HungarianMatcher
from boxer.models.boxer2d.one_to_many import match_quality, topk_assign

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


def per_target(indices: Indices, num_boxes: float, device: torch.device) -> float:
    """The normaliser of a one-to-many branch: num_boxes x the mean positives per ground truth (the
    batch's pair count / its GT count, averaged over processes like num_boxes), so the branch weighs
    about as much as the one-to-one loss it accompanies, however large k is."""
    pairs = torch.tensor([float(sum(len(q) for q, _ in indices))], device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(pairs)
        pairs = pairs / dist.get_world_size()
    return max(float(pairs.item()), num_boxes)


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
        o2m_topk: positives per ground truth of the decoder's one-to-many branch (0 = off).
        o2m_enc_topk: positives per ground truth among encoder tokens (0 = Hungarian, the paper).
        o2m_min_quality: one-to-many pairs below this quality are dropped (each target keeps its best).
        iou_aware: MAL class loss (IoU-aware targets) instead of the focal loss.
        iou_aware_gamma: MAL's gamma (target IoU^gamma, negative weight p^gamma).
        enc_class_aware: the encoder output learns the class labels (its head has C outputs).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        matcher: HungarianMatcher | None = None,
        weights: dict[str, float] | None = None,
        alpha: float = 0.25,
        gamma: float = 2.0,
        o2m_topk: int = 0,
        o2m_enc_topk: int = 0,
        enc_class_aware: bool = False,
        o2m_min_quality: float = 0.0,
        iou_aware: bool = False,
        iou_aware_gamma: float = 1.5,
    ) -> None:
        super().__init__()
        if o2m_topk < 0 or o2m_enc_topk < 0:
            raise ValueError(f"o2m_topk and o2m_enc_topk must be >= 0, got {o2m_topk}, {o2m_enc_topk}")
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher(alpha=alpha, gamma=gamma)
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.alpha, self.gamma = alpha, gamma
        self.o2m_topk, self.o2m_enc_topk, self.o2m_min_quality = o2m_topk, o2m_enc_topk, o2m_min_quality
        self.iou_aware, self.iou_aware_gamma = iou_aware, iou_aware_gamma
        self.enc_class_aware = enc_class_aware

    def _encoder_targets(self, targets: list[dict]) -> list[dict]:
        """The encoder output's targets: class-agnostic (every label 0) unless `enc_class_aware`."""
        if self.enc_class_aware:
            return targets
        return [{"labels": torch.zeros_like(t["labels"]), "boxes": t["boxes"]} for t in targets]

    def match(self, outputs: dict[str, Tensor], targets: list[dict]) -> tuple[list[Indices], Indices | None]:
        """Matches every decoder layer (`logits: Tensor[L, B, Q, C]`, `boxes: Tensor[L, B, Q, 4]`) and the
        encoder output (`enc_logits`, `enc_boxes`, `enc_valid`, if present) to the targets."""
        layers = [self.matcher(lg, bx, targets) for lg, bx in zip(outputs["logits"], outputs["boxes"])]
        if outputs.get("enc_logits") is None:
            return layers, None
        agnostic = self._encoder_targets(targets)
        if self.o2m_enc_topk:
            quality = match_quality(None, outputs["enc_boxes"], agnostic)
            counts = [len(t["labels"]) for t in targets]
            enc = topk_assign(quality, counts, self.o2m_enc_topk, valid=outputs["enc_valid"])
            return layers, enc
        enc = self.matcher(outputs["enc_logits"], outputs["enc_boxes"], agnostic, outputs["enc_valid"])
        return layers, enc

    def match_one_to_many(self, logits: Tensor, boxes: Tensor, targets: list[dict]) -> Indices:
        """Top-k assignment of one layer's one-to-many outputs (Tensor[B, Q, C], Tensor[B, Q, 4])."""
        quality = match_quality(logits, boxes, targets)
        counts = [len(t["labels"]) for t in targets]
        return topk_assign(quality, counts, self.o2m_topk, min_quality=self.o2m_min_quality)

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
            agnostic = self._encoder_targets(targets)
            valid = outputs["enc_valid"]
            norm = per_target(enc, num_boxes, device) if self.o2m_enc_topk else num_boxes
            terms = self._det_losses(outputs["enc_logits"], outputs["enc_boxes"], agnostic, enc, norm, valid)
            losses.update({k + "_enc_0": v * self.weights[k] for k, v in terms.items()})
        if self.o2m_topk and outputs.get("o2m_logits") is not None:
            for i, suffix in enumerate(layer_suffixes(len(outputs["o2m_logits"]))):
                lg, bx = outputs["o2m_logits"][i], outputs["o2m_boxes"][i]
                o2m = self.match_one_to_many(lg, bx, targets)
                terms = self._det_losses(lg, bx, targets, o2m, per_target(o2m, num_boxes, device))
                losses.update({k + "_o2m" + suffix: v * self.weights[k] for k, v in terms.items()})
        if outputs.get("dn_logits") is not None:
            losses.update(self._denoising_losses(outputs, targets, num_boxes))
        losses["loss"] = sum(losses.values())
        return losses

    def _denoising_losses(self, outputs: dict, targets: list[dict], num_boxes: float) -> dict[str, Tensor]:
        """Denoising terms of every layer: `dn_logits: Tensor[L, B, D, C]`, `dn_boxes: Tensor[L, B, D, 4]`,
        `dn_gt: Tensor[B, D]` (ground-truth index, -1 = padding), `dn_positive: Tensor[B, D]` bool."""
        gt, positive = outputs["dn_gt"], outputs["dn_positive"]
        real = gt >= 0
        indices = []
        for b in range(len(targets)):
            q = (real[b] & positive[b]).nonzero()[:, 0]
            indices.append((q.cpu(), gt[b, q].cpu()))
        groups = max(int(outputs.get("dn_groups", 1)), 1)
        losses = {}
        for i, suffix in enumerate(layer_suffixes(len(outputs["dn_logits"]))):
            lg, bx = outputs["dn_logits"][i], outputs["dn_boxes"][i]
            terms = self._det_losses(lg, bx, targets, indices, num_boxes * groups, real)
            losses.update({k + "_dn" + suffix: v * self.weights[k] for k, v in terms.items()})
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
        labels = torch.cat([t["labels"][j.to(t["labels"].device)] for t, (_, j) in zip(targets, indices)])
        labels = labels.to(logits.device)
        src = boxes[b, q].float()  # K, 4
        tgt = torch.cat([t["boxes"][j.to(t["boxes"].device)] for t, (_, j) in zip(targets, indices)])
        tgt = tgt.reshape(-1, 4).to(src)
        xyxy = [box_convert(x, "cxcywh", "xyxy") for x in (src, tgt)]
        loss_ce = self._class_loss(logits, (b, q, labels), xyxy, valid)
        loss_bbox = (src - tgt).abs().sum()
        loss_giou = generalized_box_iou_loss(xyxy[0], xyxy[1], reduction="sum")
        return {
            "loss_ce": loss_ce / num_boxes,
            "loss_bbox": loss_bbox / num_boxes,
            "loss_giou": loss_giou / num_boxes,
        }

    def _class_loss(
        self, logits: Tensor, pos: tuple[Tensor, Tensor, Tensor], xyxy: list[Tensor], valid: Tensor | None
    ) -> Tensor:
        """Summed class loss over (valid) predictions: focal, or MAL with IoU^gamma targets.

        Args:
            logits: Tensor[B, Q, C].
            pos: (image, query, label) LongTensor[K] each of the positives (repeats allowed).
            xyxy: matched predicted and target boxes Tensor[K, 4] each (for the IoU targets).
            valid: Tensor[B, Q] bool, or None (all take part).
        """
        b, q, labels = pos
        logits = logits.float()
        target = torch.zeros_like(logits)
        if not self.iou_aware:
            target[b, q, labels] = 1
        else:
            iou = box_iou(xyxy[0].detach(), xyxy[1]).diagonal() if len(b) else logits.new_zeros(0)
            flat = (b * logits.shape[1] + q) * logits.shape[2] + labels  # K
            t = iou.clamp(min=1e-6) ** self.iou_aware_gamma  # a positive's target stays > 0
            target = target.flatten().scatter_reduce(0, flat, t, "amax").view_as(logits)
        if valid is not None:  # only valid queries / tokens take part
            logits, target = logits[valid], target[valid]
        if not self.iou_aware:
            return sigmoid_focal_loss(logits, target, self.alpha, self.gamma, reduction="sum")
        is_pos = (target > 0).float()
        weight = logits.sigmoid().detach() ** self.iou_aware_gamma * (1 - is_pos) + is_pos
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")

    def _mask_losses(self, logits: Tensor, targets: Tensor, num_boxes: float) -> dict[str, Tensor]:
        """Per-pixel-mean focal and dice losses over matched pairs: logits, targets Tensor[K, M, M]."""
        logits, targets = logits.float().flatten(1), targets.float().flatten(1)  # K, M*M
        focal = sigmoid_focal_loss(logits, targets, self.alpha, self.gamma, reduction="none").mean(1).sum()
        return {"loss_mask": focal / num_boxes, "loss_dice": dice_loss(logits, targets).sum() / num_boxes}
