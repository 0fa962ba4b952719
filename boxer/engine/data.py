"""Datasets of a run: where the COCO files are, the doctor, and the train / val datasets.

A data folder uses the COCO layout `DIR/{train,val}/` + `DIR/annotations/instances_{train,val}.json`
(COCO 2017's `train2017` / `instances_train2017.json` names are found too). Explicit paths
(`train_images`, `train_ann`, `val_images`, `val_ann`) override the layout. The dataset doctor
(`boxer.data.require_valid_dataset`) runs on every split before anything is built; its warnings
are counted and the first few printed. A training split without boxes is refused; a val split
without boxes is not evaluated (COCO AP would be -1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from boxer.engine.config import TrainConfig
from boxer.errors import BoxerError

RECIPE_SIZE, MAX_SIZE = 800, 1333  # DETR / BoxeR: shorter side 800, longer side at most 1333
SMALL_IMAGES = 400
SHOWN_WARNINGS = 5


@dataclass
class Split:
    """One split's image folder and annotation file."""

    name: str
    images: Path
    ann_file: Path


def _layout(root: Path, split: str) -> Split:
    for images, ann in ((split, f"instances_{split}.json"), (f"{split}2017", f"instances_{split}2017.json")):
        if (root / "annotations" / ann).is_file() or (root / images).is_dir():
            return Split(split, root / images, root / "annotations" / ann)
    return Split(split, root / split, root / "annotations" / f"instances_{split}.json")


def resolve_split(
    data: str, split: str, *, images: str = "", ann_file: str = "", overrides: tuple[str, str] | None = None
) -> Split:
    """The folder and JSON of `split`, from `data` (COCO layout) and explicit overrides.

    `overrides` names the user's settings for the two paths, for the messages (default
    `<split>_images` / `<split>_ann`, the config keys).
    """
    set_images, set_ann = overrides or (f"{split}_images", f"{split}_ann")
    if not data and not (images and ann_file):
        raise BoxerError(f"--data: give a COCO-layout folder, or both {set_images} and {set_ann}")
    root = Path(data) if data else None
    if root is not None and not root.is_dir():
        raise BoxerError(f"--data: {root} is not a directory")
    found = _layout(root, split) if root is not None else Split(split, Path(images), Path(ann_file))
    found = Split(
        split, Path(images) if images else found.images, Path(ann_file) if ann_file else found.ann_file
    )
    if not found.ann_file.is_file():
        raise BoxerError(f"{found.ann_file}: {split} annotation file not found (set {set_ann} to override)")
    if not found.images.is_dir():
        raise BoxerError(f"{found.images}: {split} image folder not found (set {set_images} to override)")
    return found


def check_split(split: Split, log=print):
    """The dataset doctor: raises BoxerError listing the problems of a split; logs its warnings.

    Returns the doctor's report.
    """
    from boxer.data import require_valid_dataset

    report = require_valid_dataset(split.images, split.ann_file)
    if report.warnings:
        n = len(report.warnings)
        log(f"doctor: {split.name}: {n} warning{'' if n == 1 else 's'} ({split.ann_file}):")
        for problem in report.warnings[:SHOWN_WARNINGS]:
            log(f"  {problem}")
        if len(report.warnings) > SHOWN_WARNINGS:
            command = f"boxer data check --images {split.images} --annotations {split.ann_file}"
            log(f"  ... see all with `{command}`")
    return report


def count_boxes(dataset) -> int:
    """Non-crowd boxes of a CocoDetection: what a detector learns from and COCO AP is computed on."""
    return sum(int((~t["iscrowd"]).sum()) for t in dataset._targets)


def coco_dataset(
    split: Split, *, train: bool, image_size: int, max_size: int, with_masks: bool, augment: bool = True
):
    """A `boxer.data.CocoDetection` with the train (augmenting) or eval transforms."""
    from boxer.data import CocoDetection

    dataset = CocoDetection(split.images, split.ann_file, with_masks=with_masks)
    set_transforms(dataset, train=train and augment, image_size=image_size, max_size=max_size)
    return dataset


def set_transforms(dataset, *, train: bool, image_size: int, max_size: int) -> None:
    from boxer.data import build_transforms

    dataset.transforms = build_transforms(train, base_size=image_size, max_size=max_size)


def auto_image_size(train_set) -> int:
    """The eval short side when `image_size` is 0 (auto).

    DETR's 800 (the COCO recipe, which upsamples COCO's ~480-640 px photos) unless every training
    image is smaller than 400 px on its short side; then that largest short side, so that small
    images (FashionScenes' 256 px) are not blown up 3x for nothing.
    """
    largest = max((min(im["height"], im["width"]) for im in train_set.images), default=RECIPE_SIZE)
    return RECIPE_SIZE if largest >= SMALL_IMAGES else int(largest)


def build_datasets(cfg: TrainConfig, *, with_masks: bool, check: bool = True):
    """Train and val datasets of `cfg` after the doctor passed on both; val may be None if absent.

    The val split is optional when `data` has no val folder and no explicit val paths are set.
    `cfg.image_size` / `cfg.max_size` of 0 (auto) are resolved here, in place.
    """
    from boxer.data import CocoDetection

    train = resolve_split(cfg.data, "train", images=cfg.train_images, ann_file=cfg.train_ann)
    val = None
    try:
        val = resolve_split(cfg.data, "val", images=cfg.val_images, ann_file=cfg.val_ann)
    except BoxerError:
        if cfg.val_images or cfg.val_ann:
            raise
    for split in (train, val):
        if split is not None and check:
            check_split(split)
    train_set = CocoDetection(train.images, train.ann_file, with_masks=with_masks)
    if count_boxes(train_set) == 0:
        raise BoxerError(
            f"{train.ann_file}: the training split has no boxes ({len(train_set)} images, 0 annotations "
            "that are not crowd); a detector would learn to predict nothing"
        )
    val_set = CocoDetection(val.images, val.ann_file, with_masks=with_masks) if val is not None else None
    if val_set is not None and count_boxes(val_set) == 0:
        if check:
            print(f"{val.ann_file}: the val split has no boxes; no evaluation, no best checkpoint")
        val_set = None
    if val_set is not None and val_set.cat_ids != train_set.cat_ids:
        raise BoxerError(
            f"{val.ann_file}: categories {val_set.cat_ids} differ from the train split's {train_set.cat_ids}"
        )
    cfg.image_size = cfg.image_size or auto_image_size(train_set)
    cfg.max_size = cfg.max_size or round(MAX_SIZE * cfg.image_size / RECIPE_SIZE)
    sizes = {"image_size": cfg.image_size, "max_size": cfg.max_size}
    set_transforms(train_set, train=cfg.augment, **sizes)
    if val_set is not None:
        set_transforms(val_set, train=False, **sizes)
    return train_set, val_set
