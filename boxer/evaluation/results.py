"""Model predictions -> COCO results records (the format of COCO's detection results JSON).

Follows docs/CONTRACTS.md: a prediction holds `boxes: Tensor[K, 4]` xyxy in original image pixels,
`scores: Tensor[K]`, `labels: Tensor[K]` contiguous 0..C-1 and, for instance segmentation,
`masks: Tensor[K, h0, w0]` bool at the original size. Records carry the original `category_id`,
`bbox` as xywh and `segmentation` as compressed RLE with `counts` a str.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

__all__ = ["masks_to_rles", "prediction_to_records"]


def masks_to_rles(masks: torch.Tensor) -> list[dict[str, Any]]:
    """Compressed RLEs (counts as str) of binary masks `[K, H, W]`."""
    if masks.shape[0] == 0:
        return []
    arr = np.asfortranarray(masks.detach().to("cpu", torch.uint8).permute(1, 2, 0).numpy())  # H, W, K
    rles = mask_utils.encode(arr)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def prediction_to_records(
    image_id: int, prediction: dict[str, torch.Tensor], cat_ids: Sequence[int], *, with_masks: bool
) -> list[dict[str, Any]]:
    """COCO results records of one image's prediction.

    Args:
        image_id: the image's id in the annotation JSON.
        prediction: `boxes`, `scores`, `labels` and, with masks, `masks` (see the module docstring).
        cat_ids: contiguous label -> category id.
        with_masks: also encode `masks` as `segmentation`.
    """
    boxes = prediction["boxes"].detach().to("cpu", torch.float64).reshape(-1, 4)  # K, 4 xyxy
    scores = prediction["scores"].detach().to("cpu", torch.float64).reshape(-1)
    labels = prediction["labels"].detach().to("cpu", torch.int64).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"image {image_id}: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(cat_ids)):
        raise ValueError(f"image {image_id}: labels must lie in 0..{len(cat_ids) - 1}")
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    records = [
        {"image_id": int(image_id), "category_id": int(cat_ids[lab]), "bbox": box, "score": score}
        for box, score, lab in zip(xywh, scores.tolist(), labels.tolist())
    ]
    if with_masks:
        if "masks" not in prediction:
            raise ValueError(f"image {image_id}: segm evaluation needs 'masks' in the prediction")
        rles = masks_to_rles(prediction["masks"])
        if len(rles) != len(records):
            raise ValueError(f"image {image_id}: {len(rles)} masks for {len(records)} boxes")
        for rec, rle in zip(records, rles):
            rec["segmentation"] = rle
    return records
