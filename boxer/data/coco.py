"""COCO-format detection / instance-segmentation dataset (any COCO JSON + image folder).

Follows docs/CONTRACTS.md (`boxer.data.CocoDetection`). Images decode lazily in `__getitem__` through
`boxer.data.images.read_image` (the reader of the doctor and predict, same pixels, same errors); the
dataset keeps only the parsed annotations (boxes, labels, crowd flags, and segmentations when masks
are asked for). Labels are contiguous 0..C-1 in increasing category-id order; `cat_ids[label]`
maps back. Crowd annotations travel through the transforms with the others and come out apart as
`crowd_boxes`. Boxes with w or h <= 0 in the JSON are dropped (as the official code: targets drop
degenerate boxes); `boxer data check` reports them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from boxer.data.coco_json import load_coco_json
from boxer.data.doctor import segmentation_problem
from boxer.data.images import ImageReadError, read_image
from boxer.errors import BoxerError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "CocoDetection", "decode_segmentation"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as a `[H, W]` uint8 mask."""
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = seg
    return mask_utils.decode(rle)


def _box_mask(bbox: np.ndarray, height: int, width: int) -> np.ndarray:
    """A filled rectangle: the mask of an annotation that has no segmentation."""
    mask = np.zeros((height, width), dtype=np.uint8)
    x1, y1, x2, y2 = np.round(bbox).astype(int)
    mask[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = 1
    return mask


def _image_record(im: dict) -> dict:
    """The fields of an `images` entry the dataset uses, type-checked (ValueError names the id)."""
    record = {"id": int(im["id"]), "file_name": im["file_name"], "height": im["height"], "width": im["width"]}
    if not isinstance(record["file_name"], str) or not record["file_name"]:
        raise ValueError(f"image id {record['id']}: 'file_name' must be a non-empty string")
    for key in ("height", "width"):
        if isinstance(record[key], bool) or not isinstance(record[key], int) or record[key] <= 0:
            raise ValueError(f"image id {record['id']}: '{key}' must be a positive integer")
    return record


def _xywh(ann: dict) -> list[float]:
    """An annotation's bbox as 4 finite floats (ValueError names the annotation)."""
    box = ann["bbox"]
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
        raise ValueError(f"annotation id {ann.get('id')}: 'bbox' must be 4 numbers")
    box = [float(v) for v in box]
    if not all(np.isfinite(box)):
        raise ValueError(f"annotation id {ann.get('id')}: 'bbox' is not finite")
    return box


class CocoDetection(torch.utils.data.Dataset):
    """Images and targets of a COCO annotation file.

    Args:
        images_dir: folder the images' `file_name`s are relative to.
        ann_file: COCO annotation JSON (instances).
        transforms: a v2 transform called as `transforms(image, target)` on a uint8
            `tv_tensors.Image` and a dict with `boxes` (BoundingBoxes XYXY), `labels`, `iscrowd`
            and, with masks, `masks` (tv_tensors.Mask); e.g. `build_transforms(...)`. None keeps
            the image as it is.
        with_masks: decode instance masks into `target["masks"]`.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        ann_file: str | os.PathLike,
        *,
        transforms: Callable | None = None,
        with_masks: bool = False,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.ann_file = str(ann_file)
        self.transforms = transforms
        self.with_masks = with_masks
        data = load_coco_json(ann_file)
        try:
            self._index(data)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as err:
            raise BoxerError(
                f"{ann_file}: malformed COCO annotations ({type(err).__name__}: {err}); "
                "run `boxer data check` for the details"
            ) from None

    def _index(self, data: dict) -> None:
        cats = sorted(data["categories"], key=lambda c: c["id"])
        self.cat_ids: list[int] = [int(c["id"]) for c in cats]
        self.class_names: list[str] = [str(c["name"]) for c in cats]
        label_of = {cid: i for i, cid in enumerate(self.cat_ids)}
        self.images: list[dict] = [_image_record(im) for im in data["images"]]
        per_image: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for ann in data["annotations"]:
            if ann["image_id"] in per_image:
                per_image[ann["image_id"]].append(ann)
        self._targets = [self._pack(per_image[im["id"]], label_of) for im in self.images]

    def _pack(self, anns: list[dict], label_of: dict[int, int]) -> dict[str, Any]:
        """Compact per-image annotations: xyxy boxes, labels, crowd flags (+ segmentations)."""
        boxes = [_xywh(a) for a in anns]
        keep = [
            i for i, b in enumerate(boxes) if b[2] > 0 and b[3] > 0 and anns[i]["category_id"] in label_of
        ]
        xywh = np.asarray([boxes[i] for i in keep], dtype=np.float32).reshape(-1, 4)
        keep = [anns[i] for i in keep]
        packed = {
            "boxes": np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),  # N, 4 xyxy
            "labels": np.asarray([label_of[a["category_id"]] for a in keep], dtype=np.int64),
            "iscrowd": np.asarray([bool(a.get("iscrowd", 0)) for a in keep], dtype=bool),
            "ann_ids": [a.get("id") for a in keep],
        }
        if self.with_masks:
            packed["segmentations"] = [a.get("segmentation") for a in keep]
        return packed

    @property
    def num_classes(self) -> int:
        return len(self.cat_ids)

    def __len__(self) -> int:
        return len(self.images)

    def _load_image(self, info: dict) -> Tensor:
        path = self.images_dir / info["file_name"]
        try:
            image = read_image(path)  # 3, H, W uint8
        except ImageReadError as err:  # the doctor's line for this file
            raise BoxerError(f"{path}: image id {info['id']}: {err.reason}") from None
        if tuple(image.shape[-2:]) != (info["height"], info["width"]):
            raise BoxerError(
                f"{path}: image id {info['id']}: size on disk {image.shape[-1]}x{image.shape[-2]} differs "
                f"from the JSON's {info['width']}x{info['height']} (w x h)"
            )
        return image

    def _masks(self, packed: dict, h: int, w: int, image_id: int | None = None) -> np.ndarray:
        info = {"id": image_id, "height": h, "width": w}
        masks = []
        for seg, box, ann_id in zip(packed["segmentations"], packed["boxes"], packed["ann_ids"]):
            problem = segmentation_problem(seg, info) if seg else None
            if problem is not None:
                raise BoxerError(f"{self.ann_file}: annotation id {ann_id}: {problem}")
            try:
                masks.append(decode_segmentation(seg, h, w) if seg else _box_mask(box, h, w))
            except (ValueError, TypeError, AttributeError, OverflowError) as err:
                raise BoxerError(
                    f"{self.ann_file}: annotation id {ann_id}: invalid segmentation ({err})"
                ) from None
        return np.stack(masks) if masks else np.zeros((0, h, w), dtype=np.uint8)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        info, packed = self.images[index], self._targets[index]
        image = tv_tensors.Image(self._load_image(info))
        h0, w0 = info["height"], info["width"]
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(packed["boxes"]), format="XYXY", canvas_size=(h0, w0)
            ),
            "labels": torch.from_numpy(packed["labels"]),
            "iscrowd": torch.from_numpy(packed["iscrowd"]),
        }
        target["boxes"] = F.clamp_bounding_boxes(target["boxes"])
        if self.with_masks:
            target["masks"] = tv_tensors.Mask(torch.from_numpy(self._masks(packed, h0, w0, info["id"])))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return self._finish(image, target, info["id"], (h0, w0))

    def _finish(
        self, image: Tensor, target: dict, image_id: int, orig: tuple[int, int]
    ) -> tuple[Tensor, dict]:
        """Normalises the image and splits crowd annotations off the training targets."""
        image = F.normalize(F.to_dtype(image, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
        crowd = target["iscrowd"].bool()
        boxes = target["boxes"].as_subclass(Tensor).float()
        out = {
            "boxes": boxes[~crowd],
            "labels": target["labels"][~crowd],
            "image_id": image_id,
            "orig_size": torch.tensor(orig, dtype=torch.int64),
            "size": torch.tensor(tuple(image.shape[-2:]), dtype=torch.int64),
            "crowd_boxes": boxes[crowd],
        }
        if self.with_masks:
            out["masks"] = target["masks"].as_subclass(Tensor)[~crowd].to(torch.uint8)
        return image.as_subclass(Tensor), out
