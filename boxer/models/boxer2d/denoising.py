"""Denoising queries for BoxeR-2D (DN-DETR: Li et al., CVPR 2022; contrastive denoising of DINO:
Zhang et al., ICLR 2023). Training only.

Each group holds one query per ground truth of the image (padded to the batch's largest count): its
content is the embedding of the ground-truth label, flipped to a random class with probability
`label_noise`, and its reference window is the ground-truth box with noise. Box-attention needs no
other change: a denoising query samples inside its noised window, as a matching query does inside its
proposal. With `negatives` (DINO's CDN) each group also holds a negative query per ground truth whose
box is noised further (noise between 1 and 2 box half-sizes instead of below 1) and is taught "no
object". Noise (DINO): every corner moves by up to `box_noise` times half the box's width / height.

The decoder's self-attention mask (`attention_mask`, True = may attend) keeps the matching queries
from seeing any denoising query and the groups from seeing each other; denoising queries see their
own group and the matching queries. Padded denoising queries are hidden from everyone but
themselves. Losses (criterion): positives reconstruct the ground truth (class, L1, GIoU), negatives
get a class loss towards background.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert

from boxer.models.boxer2d.position import box_position_embedding


class DenoisingQueries(NamedTuple):
    """Denoising inputs of the decoder (D queries per image) and their bookkeeping."""

    tgt: Tensor  # B, D, d content queries
    pos: Tensor  # B, D, d query positions
    windows: Tensor  # B, D, 4 cxcywh noised reference windows
    gt_index: Tensor  # B, D long: the ground truth each query reconstructs (-1 = padding)
    positive: Tensor  # B, D bool: positive (reconstruct) vs negative (background) query
    groups: int
    per_group: int  # queries per group (n_max, or 2 * n_max with negatives)

    @property
    def num(self) -> int:
        return self.tgt.shape[1]

    @property
    def real(self) -> Tensor:
        """Tensor[B, D] bool: not padding."""
        return self.gt_index >= 0


def noised_boxes(boxes: Tensor, scale: float, *, negative: bool, generator=None) -> Tensor:
    """Corner noise: Tensor[N, 4] cxcywh -> cxcywh, each corner moved by (u * scale * half size) with
    u in [0, 1) (positive) or [1, 2) (negative), random sign; clamped to [0, 1], size >= 1e-3."""
    xyxy = box_convert(boxes, "cxcywh", "xyxy")
    half = boxes[:, 2:].repeat(1, 2) / 2  # N, 4
    u = torch.rand(boxes.shape, generator=generator, device=boxes.device) + float(negative)
    sign = torch.randint(0, 2, boxes.shape, generator=generator, device=boxes.device) * 2 - 1
    xyxy = (xyxy + sign * u * half * scale).clamp(0, 1)
    lo, hi = torch.minimum(xyxy[:, :2], xyxy[:, 2:]), torch.maximum(xyxy[:, :2], xyxy[:, 2:])
    out = box_convert(torch.cat((lo, hi), -1), "xyxy", "cxcywh")
    return torch.cat((out[:, :2], out[:, 2:].clamp(min=1e-3)), -1)


def attention_mask(real: Tensor, groups: int, per_group: int, num_matching: int) -> Tensor:
    """Self-attention mask Tensor[B, 1, T, T] bool (True = may attend), T = D + num_matching.

    Args:
        real: Tensor[B, D] bool, False for padded denoising queries.
        groups, per_group: D = groups * per_group, group-major.
        num_matching: matching queries, after the denoising ones.
    """
    B, D = real.shape
    T = D + num_matching
    group = torch.arange(D, device=real.device) // per_group  # D
    allowed = torch.zeros(T, T, dtype=torch.bool, device=real.device)
    allowed[:D, :D] = group[:, None] == group[None, :]
    allowed[:, D:] = True  # everyone sees the matching queries; they see only themselves (below)
    allowed = allowed[None].repeat(B, 1, 1)  # B, T, T
    allowed[:, :, :D] &= real[:, None, :]  # nobody sees padding ...
    eye = torch.eye(D, dtype=torch.bool, device=real.device)
    allowed[:, :D, :D] |= eye  # ... but itself (no empty rows)
    return allowed[:, None]


class DenoisingGenerator(nn.Module):
    """Builds the denoising queries of a batch.

    Args:
        dim: model width.
        num_classes: classes (label embedding rows).
        groups: denoising groups (>= 1).
        box_noise: corner noise scale (DN-DETR 0.4; DINO 1.0).
        label_noise: probability that a query's label is replaced by a random class.
        negatives: also add DINO's contrastive negative queries.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        groups: int = 2,
        box_noise: float = 0.4,
        label_noise: float = 0.2,
        negatives: bool = False,
    ) -> None:
        super().__init__()
        if groups < 1 or box_noise < 0 or not 0 <= label_noise <= 1:
            raise ValueError(
                f"denoising needs groups >= 1, box_noise >= 0, 0 <= label_noise <= 1; "
                f"got {groups}, {box_noise}, {label_noise}"
            )
        self.dim, self.num_classes = dim, num_classes
        self.groups, self.box_noise, self.label_noise, self.negatives = (
            groups,
            box_noise,
            label_noise,
            negatives,
        )
        self.label_embed = nn.Embedding(num_classes, dim)

    def forward(self, targets: list[dict]) -> DenoisingQueries | None:
        """targets: per image `labels: Tensor[N]`, `boxes: Tensor[N, 4]` cxcywh normalised. Returns
        None when the batch has no ground truth."""
        n_max = max(len(t["labels"]) for t in targets)
        if n_max == 0:
            return None
        kinds = (True, False) if self.negatives else (True,)
        per_group = n_max * len(kinds)
        B, D = len(targets), self.groups * per_group
        device = self.label_embed.weight.device
        labels = torch.zeros(B, D, dtype=torch.long, device=device)
        windows = torch.full((B, D, 4), 0.5, device=device)
        gt_index = torch.full((B, D), -1, dtype=torch.long, device=device)
        positive = torch.zeros(B, D, dtype=torch.bool, device=device)
        for b, t in enumerate(targets):
            n = len(t["labels"])
            for g in range(self.groups):
                for j, pos_kind in enumerate(kinds):
                    sl = slice(g * per_group + j * n_max, g * per_group + j * n_max + n)
                    windows[b, sl] = noised_boxes(
                        t["boxes"].float().to(device), self.box_noise, negative=not pos_kind
                    )
                    labels[b, sl] = self._flip(t["labels"].to(device))
                    gt_index[b, sl] = torch.arange(n, device=device)
                    positive[b, sl] = pos_kind
        tgt = self.label_embed(labels)  # B, D, d
        pos = box_position_embedding(windows, self.dim)
        return DenoisingQueries(tgt, pos, windows, gt_index, positive, self.groups, per_group)

    def _flip(self, labels: Tensor) -> Tensor:
        flip = torch.rand(labels.shape, device=labels.device) < self.label_noise
        random = torch.randint(0, self.num_classes, labels.shape, device=labels.device)
        return torch.where(flip, random, labels)
