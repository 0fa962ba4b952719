"""A tiny detector and dataset implementing the engine's contracts (docs/CONTRACTS.md), for tests.

`TinyDetector` is a real nn.Module with a `backbone`, a `linear_box` Linear (to exercise the
parameter groups), dropout (to exercise RNG restore) and a num_boxes all-reduce like the real
criterion. `TinyDetection` draws its augmentation from python `random`, numpy and torch, so
exact resume is only possible if all three are seeded per sample.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


class Batch(NamedTuple):
    images: Tensor
    pad_mask: Tensor
    targets: list[dict]


def collate(samples) -> Batch:
    images = torch.stack([s[0] for s in samples])
    pad = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool)
    return Batch(images, pad, [s[1] for s in samples])


class TinyDetection(torch.utils.data.Dataset):
    """`n` random 32x32 images with two boxes each; ids 1..n; random flip and jitter."""

    def __init__(self, n: int = 12, *, num_classes: int = 3, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, size, size, generator=g)
        xy = torch.rand(n, 2, 2, generator=g) * size / 2
        self.boxes = torch.cat([xy, xy + size / 4], dim=-1)  # n, 2, 4 xyxy
        self.labels = torch.randint(0, num_classes, (n, 2), generator=g)
        self.size = size
        self.num_classes = num_classes
        self.cat_ids = list(range(1, num_classes + 1))
        self.class_names = [f"c{i}" for i in self.cat_ids]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, boxes = self.images[i].clone(), self.boxes[i].clone()
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
            boxes = torch.stack(
                [self.size - boxes[:, 2], boxes[:, 1], self.size - boxes[:, 0], boxes[:, 3]], -1
            )
        image = image * (0.8 + 0.4 * random.random()) + float(np.random.uniform(-0.1, 0.1))
        hw = torch.tensor([self.size, self.size])
        target = {
            "boxes": boxes,
            "labels": self.labels[i].clone(),
            "image_id": i + 1,
            "orig_size": hw,
            "size": hw,
        }
        return image, target


class TinyDetector(nn.Module):
    """Predicts one box and multi-label class scores per image from pooled conv features."""

    def __init__(self, num_classes: int = 3, *, dropout: float = 0.1, nan_at_call: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.with_masks = False
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.dropout = nn.Dropout(dropout)
        self.class_embed = nn.Linear(8, num_classes)
        self.linear_box = nn.Linear(8, 4)
        self.nan_at_call = nan_at_call
        self.calls = 0

    def param_groups(self, lr: float, *, lr_backbone: float) -> list[dict]:
        """backbone at `lr_backbone`, `linear_box` at 0.1 x `lr` (as BoxeR-2D), the rest at `lr`."""
        groups: dict[str, list[nn.Parameter]] = {"backbone": [], "linear_box": [], "rest": []}
        for name, p in self.named_parameters():
            key = (
                "linear_box"
                if "linear_box" in name
                else "backbone"
                if name.startswith("backbone.")
                else "rest"
            )
            groups[key].append(p)
        lrs = {"backbone": lr_backbone, "linear_box": lr * 0.1, "rest": lr}
        return [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]

    def _heads(self, images: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.dropout(self.backbone(images).flatten(1))  # B, 8
        return self.class_embed(feats), self.linear_box(feats).sigmoid()  # B, C / B, 4 cxcywh

    def forward(self, images: Tensor, pad_mask: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        self.calls += 1
        logits, boxes = self._heads(images)
        onehot = torch.zeros_like(logits)
        for b, t in enumerate(targets):
            onehot[b, t["labels"]] = 1.0
        num_boxes = torch.tensor(float(sum(len(t["labels"]) for t in targets)))
        if dist.is_initialized():
            dist.all_reduce(num_boxes)
            num_boxes = num_boxes / dist.get_world_size()
        num_boxes = num_boxes.clamp(min=1)
        size = targets[0]["size"].flip(0).repeat(2).float()  # w, h, w, h
        gt = torch.stack([t["boxes"][0] for t in targets]) / size  # B, 4 normalised xyxy
        loss_ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="sum") / num_boxes
        loss_bbox = 5 * F.l1_loss(boxes, gt, reduction="sum") / num_boxes
        if self.nan_at_call is not None and self.calls >= self.nan_at_call:
            loss_bbox = loss_bbox * float("nan")
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss": loss_ce + loss_bbox}

    @torch.no_grad()
    def predict(self, images: Tensor, pad_mask: Tensor, targets: list[dict]) -> list[dict]:
        logits, boxes = self._heads(images)
        out = []
        for b, t in enumerate(targets):
            h, w = t["orig_size"].tolist()
            scores, labels = logits[b].sigmoid().topk(min(2, self.num_classes))
            box = (boxes[b] * torch.tensor([w, h, w, h])).clamp(min=0)
            box = torch.stack([box[0], box[1], torch.maximum(box[0], box[2]), torch.maximum(box[1], box[3])])
            out.append({"boxes": box.expand(len(scores), 4).clone(), "scores": scores, "labels": labels})
        return out
