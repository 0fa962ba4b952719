"""One-to-many supervision without extra queries (MS-DETR: Zhao et al., "Efficient DETR Training
with Mixed Supervision", CVPR 2024), for the decoder queries and the encoder proposals of BoxeR-2D.

- Assignment (`topk_assign`): every ground truth takes the k predictions of highest match quality
  (not one Hungarian match). A prediction may serve two ground truths; its class target is then the
  union and it regresses to each, so every ground truth has exactly min(k, valid predictions)
  positives. MS-DETR's assigner also drops pairs below a quality threshold (0.4, keeping the best
  one): `min_quality` does that, off by default (at a few hundred iterations almost every IoU is low).
- Quality (`match_quality`): decoder, 0.3 * p(ground-truth class) + 0.7 * IoU, MS-DETR's mix;
  encoder (class-agnostic tokens), the IoU of the token's predicted box ("top-k tokens per ground
  truth by IoU"), as the notes in ../shared/notes/detr_training_viz_export.md (1.3) suggest.
- Where (`OneToManyBranch`): MS-DETR supervises its one-to-many output right after cross-attention,
  through an extra FFN, before the self-attention that suppresses duplicates. BoxeR's layer order is
  self-attention -> cross-attention -> FFN, so the branch reads each layer's state after
  cross-attention (`LayerState.t2`) through its own FFN + LayerNorm and the shared detection head.

Training only: inference, the one-to-one branch and its Hungarian matching are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert, box_iou

from boxer.models.boxer2d.blocks import FeedForward

Indices = list[tuple[Tensor, Tensor]]


@torch.no_grad()
def match_quality(
    logits: Tensor | None, boxes: Tensor, targets: list[dict], *, class_weight: float = 0.3
) -> Tensor:
    """Match quality Tensor[B, Q, N_max] (padded columns -inf) between predictions and targets.

    Args:
        logits: Tensor[B, Q, C] class logits, or None for IoU only (class-agnostic encoder tokens).
        boxes: Tensor[B, Q, 4] cxcywh normalised.
        targets: per image `labels: Tensor[N]`, `boxes: Tensor[N, 4]` cxcywh normalised.
        class_weight: weight of p(target class); the IoU gets 1 - class_weight.
    """
    B, Q, _ = boxes.shape
    n_max = max((len(t["labels"]) for t in targets), default=0)
    out = boxes.new_full((B, Q, n_max), float("-inf"), dtype=torch.float32)
    pred = box_convert(boxes.float(), "cxcywh", "xyxy")  # B, Q, 4
    for b, t in enumerate(targets):
        n = len(t["labels"])
        if n == 0:
            continue
        iou = box_iou(pred[b], box_convert(t["boxes"].float().to(pred), "cxcywh", "xyxy"))  # Q, N
        if logits is None:
            out[b, :, :n] = iou
        else:
            p = logits[b].float().sigmoid()[:, t["labels"].to(logits.device)]  # Q, N
            out[b, :, :n] = class_weight * p + (1 - class_weight) * iou
    return out


@torch.no_grad()
def topk_assign(
    quality: Tensor, num_targets: list[int], k: int, *, valid: Tensor | None = None, min_quality: float = 0.0
) -> Indices:
    """Each target takes its top-k predictions by quality.

    Args:
        quality: Tensor[B, Q, N_max] (columns past an image's target count are ignored).
        num_targets: targets per image.
        k: positives per target (at most the image's valid predictions).
        valid: Tensor[B, Q] bool, or None; invalid predictions are never assigned.
        min_quality: pairs below it are dropped, except each target's best one.

    Returns:
        per image (prediction indices, target indices), LongTensor[K] on CPU, sorted by prediction
        then target; a prediction may appear once per target it serves.
    """
    B, Q, _ = quality.shape
    q = quality.float() if valid is None else quality.float().masked_fill(~valid[..., None], float("-inf"))
    out: Indices = []
    for b, n in enumerate(num_targets):
        n_valid = Q if valid is None else int(valid[b].sum())
        kk = min(k, n_valid)
        if n == 0 or kk == 0:
            out.append((torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)))
            continue
        vals, rows = q[b, :, :n].topk(kk, dim=0)  # kk, n (sorted: row 0 is each target's best)
        cols = torch.arange(n, device=q.device).expand(kk, n)
        keep = vals >= min_quality
        keep[0] = True
        pred, tgt = rows[keep].cpu(), cols[keep].cpu()
        order = torch.argsort(pred * n + tgt)
        out.append((pred[order], tgt[order]))
    return out


class OneToManyBranch(nn.Module):
    """Per decoder layer, the auxiliary FFN + LayerNorm that feeds the one-to-many output.

    Args:
        dim: model width.
        ffn_dim: FFN hidden width.
        num_layers: decoder layers.
    """

    def __init__(self, dim: int, *, ffn_dim: int, num_layers: int) -> None:
        super().__init__()
        self.ffns = nn.ModuleList(FeedForward(dim, ffn_dim) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_layers))

    def forward(self, t2: list[Tensor]) -> Tensor:
        """t2: per layer Tensor[B, Q, d] (after cross-attention) -> Tensor[L, B, Q, d]."""
        return torch.stack([n(x + f(x)) for x, f, n in zip(t2, self.ffns, self.norms)])
