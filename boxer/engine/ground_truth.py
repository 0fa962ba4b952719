"""Ground truth of a COCO annotation file per image, for pictures and score thresholds.

`load_ground_truth(ann_file, cat_ids)` reads every image's boxes as `Tensor[N, 4]` xyxy in original
image pixels with contiguous labels (the checkpoint's `cat_ids` order, as `CocoDetection`), crowd
boxes kept apart; `match_by_file_name` pairs image files with those entries by base name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from boxer.errors import BoxerError


@dataclass
class GroundTruth:
    """One image of an annotation file.

    Args:
        image_id: its id in the file.
        file_name: its `file_name` entry.
        height, width: its size in pixels.
        boxes: `Tensor[N, 4]` xyxy, original pixels, non-crowd annotations.
        labels: `Tensor[N]` contiguous classes.
        crowd_boxes: `Tensor[M, 4]` xyxy of the crowd annotations.
    """

    image_id: int
    file_name: str
    height: int
    width: int
    boxes: Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    labels: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    crowd_boxes: Tensor = field(default_factory=lambda: torch.zeros(0, 4))


def _check_categories(ann_file: str | os.PathLike, data: dict, cat_ids: Sequence[int]) -> None:
    found = sorted(int(c["id"]) for c in data["categories"])
    if found != sorted(int(c) for c in cat_ids):
        raise BoxerError(f"{ann_file}: categories {found} differ from the checkpoint's {list(cat_ids)}")


def load_ground_truth(ann_file: str | os.PathLike, cat_ids: Sequence[int]) -> list[GroundTruth]:
    """Every image of a COCO annotation file with its boxes (images in file order).

    Args:
        ann_file: COCO instances JSON.
        cat_ids: contiguous label -> category id; the file must have exactly these categories.
    """
    from boxer.data.coco_json import load_coco_json

    data = load_coco_json(ann_file)
    try:
        _check_categories(ann_file, data, cat_ids)
        label_of = {int(c): i for i, c in enumerate(cat_ids)}
        images = {
            int(im["id"]): GroundTruth(
                int(im["id"]), str(im["file_name"]), int(im["height"]), int(im["width"])
            )
            for im in data["images"]
        }
        per_image: dict[int, list[tuple[list[float], int, bool]]] = {i: [] for i in images}
        for ann in data["annotations"]:
            x, y, w, h = (float(v) for v in ann["bbox"])
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                raise ValueError(f"annotation id {ann.get('id')!r}: bbox {ann['bbox']} is not finite")
            if int(ann["image_id"]) in per_image and w > 0 and h > 0:
                entry = ([x, y, x + w, y + h], label_of[int(ann["category_id"])], bool(ann.get("iscrowd", 0)))
                per_image[int(ann["image_id"])].append(entry)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as err:
        raise BoxerError(
            f"{ann_file}: malformed COCO annotations ({type(err).__name__}: {err}); "
            "run `boxer data check` for the details"
        ) from None
    for image_id, entries in per_image.items():
        gt = images[image_id]
        plain = [e for e in entries if not e[2]]
        gt.boxes = torch.tensor([e[0] for e in plain], dtype=torch.float32).reshape(-1, 4)
        gt.labels = torch.tensor([e[1] for e in plain], dtype=torch.int64)
        gt.crowd_boxes = torch.tensor([e[0] for e in entries if e[2]], dtype=torch.float32).reshape(-1, 4)
    return list(images.values())


def match_by_file_name(
    paths: Sequence[Path], truth: Sequence[GroundTruth], ann_file: str | os.PathLike
) -> list[GroundTruth | None]:
    """The entry of each image file (same base name), or None; refuses when none or a size differs.

    Args:
        paths: image files.
        truth: `load_ground_truth`'s entries.
        ann_file: the annotation file, for the messages.
    """
    by_name: dict[str, GroundTruth] = {}
    for gt in truth:
        by_name.setdefault(Path(gt.file_name).name, gt)
    found = [by_name.get(p.name) for p in paths]
    if not any(found):
        raise BoxerError(
            f"--gt {ann_file}: none of the {len(paths)} image(s) is named in it "
            f"(matched by file name, e.g. {paths[0].name})"
        )
    return found


def check_size(
    gt: GroundTruth | None, path: Path, height: int, width: int, ann_file: str | os.PathLike
) -> None:
    """Refuses an image whose size differs from its annotation entry (the boxes would not fit)."""
    if gt is not None and (gt.height, gt.width) != (height, width):
        raise BoxerError(
            f"{path}: {width}x{height} on disk, but {ann_file} says {gt.width}x{gt.height} for "
            f"{gt.file_name} (w x h); is this the right annotation file?"
        )
