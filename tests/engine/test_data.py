"""Run datasets: COCO layout resolution, overrides, automatic image size."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from boxer.engine.data import auto_image_size, resolve_split
from boxer.errors import BoxerError


def _layout(root, images: str, ann: str):
    (root / images).mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / ann).write_text("{}")


def test_coco_layouts_and_overrides(tmp_path):
    _layout(tmp_path / "fs", "train", "instances_train.json")
    _layout(tmp_path / "coco", "val2017", "instances_val2017.json")
    assert resolve_split(str(tmp_path / "fs"), "train").images == tmp_path / "fs" / "train"
    assert resolve_split(str(tmp_path / "coco"), "val").ann_file.name == "instances_val2017.json"
    explicit = resolve_split(
        "",
        "val",
        images=str(tmp_path / "fs" / "train"),
        ann_file=str(tmp_path / "fs" / "annotations" / "instances_train.json"),
    )
    assert explicit.images.name == "train"
    with pytest.raises(BoxerError, match="val annotation file not found .set val_ann"):
        resolve_split(str(tmp_path / "fs"), "val")
    with pytest.raises(BoxerError, match="--data: give a COCO-layout folder"):
        resolve_split("", "train")


def test_auto_image_size_keeps_small_images_native():
    def ds(*sizes):
        return SimpleNamespace(images=[{"height": h, "width": w} for h, w in sizes])

    assert auto_image_size(ds((256, 256), (256, 256))) == 256
    assert auto_image_size(ds((480, 640), (427, 640))) == 800  # COCO-like photos: the recipe's 800
    assert auto_image_size(ds((128, 300), (96, 96))) == 128
