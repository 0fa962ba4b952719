"""Checks detection targets (docs/CONTRACTS.md "Data") and converts them for the matcher and losses.

Contract targets hold `boxes` as xyxy absolute pixels of the transformed image and contiguous
`labels`; the criterion wants cxcywh normalised by the transformed, unpadded image size (clamped to
the image; docs/boxer2d.md, "Losses"). Bad targets raise `BoxerError` naming the image id and the box.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert

from boxer.errors import BoxerError


def _image_id(target: dict, i: int) -> str:
    return f"image id {target.get('image_id', f'#{i} of the batch')}"


def check_target(target: dict, i: int, num_classes: int) -> None:
    """Raises BoxerError when target `i` of a batch breaks the contract."""
    where = _image_id(target, i)
    boxes, labels = target.get("boxes"), target.get("labels")
    if boxes is None or labels is None:
        raise BoxerError(f"target of {where}: needs 'boxes' and 'labels'")
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(labels) != len(boxes):
        raise BoxerError(
            f"target of {where}: boxes {tuple(boxes.shape)} and labels {tuple(labels.shape)} mismatch"
        )
    bad = ~torch.isfinite(boxes).all(-1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        raise BoxerError(
            f"target of {where}: box {j} {boxes[j].tolist()} is not a finite xyxy box with x2>=x1, y2>=y1"
        )
    out = (labels < 0) | (labels >= num_classes)
    if bool(out.any()):
        j = int(out.nonzero()[0])
        raise BoxerError(
            f"target of {where}: box {j} has label {int(labels[j])} outside 0..{num_classes - 1}"
        )
    if "size" not in target:
        raise BoxerError(f"target of {where}: needs 'size' (h, w) of the transformed image")


def normalise_targets(targets: list[dict], num_classes: int, device: torch.device) -> list[dict[str, Tensor]]:
    """Checks the targets; returns per image `labels: Tensor[N]`, `boxes: Tensor[N, 4]` cxcywh in [0, 1]."""
    out = []
    for i, t in enumerate(targets):
        check_target(t, i, num_classes)
        h, w = (float(v) for v in t["size"])
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        xyxy = t["boxes"].float().cpu()
        xyxy = torch.minimum(xyxy.clamp(min=0), scale)  # clamp to the image
        boxes = box_convert(xyxy / scale, "xyxy", "cxcywh")
        out.append({"labels": t["labels"].long().to(device), "boxes": boxes.to(device)})
    return out
