"""Prediction on image files: annotated PNGs and a COCO results JSON.

Images go through the same eval resize as `CocoDetection` (`build_transforms(False, ...)`) and the
ImageNet normalisation. Outputs in `out_dir`:

- `<stem>.png`: the image with boxes, class names, scores and (mask models) masks drawn, for
  detections with score >= the threshold;
- `results.json`: COCO results (`image_id`, `category_id`, `bbox` xywh, `score`, and compressed
  RLE `segmentation` for mask models), accepted by pycocotools' `COCO.loadRes`;
- `images.json`: a COCO skeleton (`images` with the ids used, `categories`) so that
  `COCO("images.json").loadRes("results.json")` works without ground truth.

Image ids are the file stem when it is a number (`000123.png` -> 123), else sequential ids that
avoid the numeric ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from boxer.engine.checkpoint import atomic_write_text
from boxer.errors import BoxerError
from boxer.evaluation import prediction_to_records

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def list_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named by `inputs` (files, or folders whose images are taken, sorted)."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise BoxerError(f"{item}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            paths.extend(found)
        elif item.is_file():
            paths.append(item)
        else:
            raise BoxerError(f"{item}: no such image file or folder")
    return paths


def assign_image_ids(paths: Sequence[Path]) -> list[int]:
    """The numeric file stem as id where there is one (and it is unique), else the next free id."""
    ids: list[int | None] = []
    used: set[int] = set()
    for p in paths:
        stem = int(p.stem) if p.stem.isdigit() else None
        ids.append(stem if stem is not None and stem not in used else None)
        if ids[-1] is not None:
            used.add(ids[-1])
    free = (i for i in range(1, 10**12) if i not in used)
    return [i if i is not None else next(free) for i in ids]


class ImageFiles(torch.utils.data.Dataset):
    """Image files as (image, target) pairs with the eval preprocessing of CocoDetection.

    Args:
        paths: image files.
        ids: their image ids.
        image_size: eval short side.
        max_size: eval long-side cap.
    """

    def __init__(self, paths: Sequence[Path], ids: Sequence[int], *, image_size: int, max_size: int) -> None:
        from boxer.data import build_transforms

        self.paths, self.ids = list(paths), list(ids)
        self.transforms = build_transforms(False, base_size=image_size, max_size=max_size)

    def __len__(self) -> int:
        return len(self.paths)

    def load_uint8(self, index: int) -> Tensor:
        from torchvision.io import ImageReadMode, decode_image

        path = self.paths[index]
        try:
            return decode_image(str(path), mode=ImageReadMode.RGB)  # 3, H, W uint8
        except (RuntimeError, OSError, ValueError) as err:
            raise BoxerError(f"{path}: cannot read image ({err})") from None

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        from boxer.data import IMAGENET_MEAN, IMAGENET_STD

        raw = self.load_uint8(index)
        h0, w0 = raw.shape[-2:]
        empty = {
            "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(h0, w0)),
            "labels": torch.zeros(0, dtype=torch.int64),
        }
        image, _ = self.transforms(tv_tensors.Image(raw), empty)
        image = F.normalize(F.to_dtype(image, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
        target = {
            "image_id": self.ids[index],
            "orig_size": torch.tensor([h0, w0]),
            "size": torch.tensor(image.shape[-2:]),
        }
        return image.as_subclass(Tensor), target


def keep_above(pred: dict[str, Tensor], score: float) -> dict[str, Tensor]:
    """The detections of `pred` with score >= `score`."""
    keep = pred["scores"] >= score
    return {k: v[keep] for k, v in pred.items()}


def draw_predictions(image: Tensor, pred: dict[str, Tensor], class_names: Sequence[str]) -> Tensor:
    """`image` (uint8 [3, H, W]) with masks, boxes and "name score" labels drawn."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    if len(pred["scores"]) == 0:
        return image
    colors = [_color(int(c)) for c in pred["labels"]]
    if "masks" in pred:
        image = draw_segmentation_masks(image, pred["masks"].bool(), alpha=0.45, colors=colors)
    labels = [f"{class_names[int(c)]} {s:.2f}" for c, s in zip(pred["labels"], pred["scores"].tolist())]
    width = max(1, round(max(image.shape[-2:]) / 300))
    return draw_bounding_boxes(image, pred["boxes"].float(), labels=labels, colors=colors, width=width)


def _color(label: int) -> tuple[int, int, int]:
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]
    palette += [(145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
    return palette[label % len(palette)]


def write_outputs(
    out_dir: Path,
    dataset: ImageFiles,
    predictions: dict[int, dict[str, Tensor]],
    *,
    cat_ids: Sequence[int],
    class_names: Sequence[str],
    score: float,
) -> dict[str, Any]:
    """Writes the PNGs, results.json and images.json; returns counts and paths."""
    from torchvision.io import write_png

    out_dir.mkdir(parents=True, exist_ok=True)
    results, images, drawn = [], [], []
    for index, (path, image_id) in enumerate(zip(dataset.paths, dataset.ids)):
        pred = keep_above(predictions[image_id], score)
        raw = dataset.load_uint8(index)
        images.append({"id": image_id, "file_name": str(path), "height": raw.shape[1], "width": raw.shape[2]})
        results.extend(prediction_to_records(image_id, pred, cat_ids, with_masks="masks" in pred))
        png = out_dir / f"{path.stem}.png"
        if png in drawn:  # same stem from two folders or suffixes
            png = out_dir / f"{path.stem}-{image_id}.png"
        tmp = png.with_name(f".{png.name}.tmp")
        write_png(draw_predictions(raw, pred, class_names), str(tmp))
        tmp.replace(png)
        drawn.append(png)
    categories = [{"id": int(c), "name": n} for c, n in zip(cat_ids, class_names)]
    atomic_write_text(out_dir / "results.json", json.dumps(results) + "\n")
    atomic_write_text(
        out_dir / "images.json", json.dumps({"images": images, "categories": categories}) + "\n"
    )
    return {"images": drawn, "detections": len(results), "results": out_dir / "results.json"}
