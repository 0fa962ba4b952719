"""Transforms keep boxes and masks consistent under flip, resize and crop; recipe lengths scale."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from boxer.data import CocoDetection, build_transforms
from boxer.data.transforms import (
    RandomShortSideResize,
    RandomSizeCrop,
    TightenCutBoxes,
    masks_to_boxes_xyxy,
    scaled_sizes,
    short_side_size,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


@pytest.fixture(scope="module")
def samples(fashion_scenes_tiny):
    """Raw (image, target) pairs of the tiny train split, before any transform, with masks."""
    ds = CocoDetection(
        fashion_scenes_tiny / "train",
        fashion_scenes_tiny / "annotations" / "instances_train.json",
        with_masks=True,
    )
    out = []
    for info, packed in zip(ds.images, ds._targets):
        h, w = info["height"], info["width"]
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(packed["boxes"]), format="XYXY", canvas_size=(h, w)
            ),
            "labels": torch.from_numpy(packed["labels"]),
            "iscrowd": torch.from_numpy(packed["iscrowd"]),
            "masks": tv_tensors.Mask(torch.from_numpy(ds._masks(packed, h, w))),
        }
        out.append((tv_tensors.Image(ds._load_image(info)), target))
    return out


def _max_gap(target) -> float:
    """Largest distance between a box side and the matching side of its mask's tight box."""
    boxes = target["boxes"].as_subclass(torch.Tensor)
    if len(boxes) == 0:
        return 0.0
    return float((masks_to_boxes_xyxy(target["masks"]) - boxes).abs().max())


def test_generated_boxes_are_tight(samples):
    assert max(_max_gap(t) for _, t in samples) == 0.0


def test_flip_is_exact(samples):
    flip = v2.RandomHorizontalFlip(p=1.0)
    for image, target in samples:
        out_image, out = flip(image, target)
        assert _max_gap(out) == 0.0
        assert torch.equal(out_image, image.flip(-1))


@pytest.mark.parametrize("short", [64, 96, 160, 300])
def test_resize_keeps_boxes_on_masks(samples, short):
    """Within one pixel, plus one source pixel when downscaling (sub-pixel slivers can vanish)."""
    resize = RandomShortSideResize([short])
    for image, target in samples:
        _, out = resize(image, target)
        scale = short / image.shape[-2]
        assert out["masks"].shape[-2:] == (short, short)
        assert _max_gap(out) <= 1.0 + (scale if scale < 1 else 0.0)


def test_crop_keeps_boxes_tight(samples):
    torch.manual_seed(0)
    crop = v2.Compose([RandomSizeCrop(40, 100), TightenCutBoxes(), v2.SanitizeBoundingBoxes()])
    for _ in range(5):
        for image, target in samples:
            target = {k: v for k, v in target.items() if k != "iscrowd"}
            out_image, out = crop(image, target)
            assert _max_gap(out) <= 1e-4
            assert len(out["boxes"]) == len(out["labels"]) == len(out["masks"])
            assert out["masks"].flatten(1).any(1).all(), "instances cut away entirely are dropped"
            assert out["masks"].shape[-2:] == out_image.shape[-2:]


def test_train_pipeline_consistent(samples):
    """Whole recipe: shapes and counts agree; boxes match masks within 2 px of the coarsest stage
    (a crop can be upscaled by scales[-1] / crop_min, which magnifies mask quantisation)."""
    torch.manual_seed(1)
    tf = build_transforms(True, base_size=128)
    lengths = scaled_sizes(128)
    tol = 2.0 * lengths["scales"][-1] / lengths["crop_min"]
    for _ in range(8):
        for image, target in samples:
            out_image, out = tf(image, target)
            h, w = out_image.shape[-2:]
            boxes = out["boxes"].as_subclass(torch.Tensor)
            n = len(boxes)
            assert len(out["labels"]) == len(out["iscrowd"]) == len(out["masks"]) == n
            assert out["masks"].shape[-2:] == (h, w) and tuple(out["boxes"].canvas_size) == (h, w)
            assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes >= 0).all()
            assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
            assert _max_gap(out) <= tol
            assert max(h, w) <= round(1333 * 128 / 800)


def test_eval_resize_sets_short_side(fashion_scenes_tiny):
    ds = CocoDetection(
        fashion_scenes_tiny / "val",
        fashion_scenes_tiny / "annotations" / "instances_val.json",
        transforms=build_transforms(False, base_size=200),
    )
    raw = CocoDetection(
        fashion_scenes_tiny / "val", fashion_scenes_tiny / "annotations" / "instances_val.json"
    )
    image, target = ds[0]
    _, raw_target = raw[0]
    assert image.shape[-2:] == (200, 200) and target["size"].tolist() == [200, 200]
    assert target["orig_size"].tolist() == [128, 128]
    torch.testing.assert_close(target["boxes"], raw_target["boxes"] * (200 / 128))


def test_recipe_lengths():
    s800 = scaled_sizes(800)
    assert s800["scales"] == list(range(480, 801, 32))
    assert s800["crop_resize"] == [400, 500, 600] and (s800["crop_min"], s800["crop_max"]) == (384, 600)
    s256 = scaled_sizes(256)
    assert s256["scales"][0] == 154 and s256["scales"][-1] == 256 and s256["crop_max"] == 192


def test_short_side_size_matches_detr():
    assert short_side_size(480, 640, 800, 1333) == (800, 1066)
    assert short_side_size(200, 1000, 800, 1333) == (267, 1333)  # long side capped
    assert short_side_size(800, 800, 800, 1333) == (800, 800)
