"""CocoDetection and collate_detection: contract keys, labels, crowd, masks, laziness, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from boxer.data import IMAGENET_MEAN, CocoDetection, build_transforms, collate_detection
from boxer.data import coco as coco_module
from boxer.errors import BoxerError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


@pytest.fixture()
def handmade(tmp_path):
    """Two images (60x40 and 30x50), categories 3/7/9, a crowd, a polygon, an uncompressed RLE."""
    (tmp_path / "img").mkdir()
    Image.new("RGB", (60, 40), (124, 116, 104)).save(tmp_path / "img" / "a.png")
    Image.new("RGB", (30, 50), (10, 20, 30)).save(tmp_path / "img" / "b.png")
    rle_counts = [10 * 40 + 5, 10, 30, 10, 30, 10, 60 * 40 - 10 * 40 - 5 - 90]  # column-major runs
    data = {
        "images": [
            {"id": 5, "file_name": "a.png", "width": 60, "height": 40},
            {"id": 9, "file_name": "b.png", "width": 30, "height": 50},
        ],
        "categories": [{"id": 9, "name": "nine"}, {"id": 3, "name": "three"}, {"id": 7, "name": "seven"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 7, "bbox": [10, 5, 20, 10], "iscrowd": 0,
             "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]], "area": 200},
            {"id": 2, "image_id": 5, "category_id": 9, "bbox": [0, 0, 60, 40], "iscrowd": 1,
             "segmentation": {"size": [40, 60], "counts": rle_counts}, "area": 30},
            {"id": 3, "image_id": 5, "category_id": 3, "bbox": [1, 1, 0, 4], "iscrowd": 0},
            {"id": 4, "image_id": 9, "category_id": 3, "bbox": [2, 3, 10, 20], "iscrowd": 0},
        ],
    }  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path


def test_contract_keys_and_label_mapping(handmade):
    ds = CocoDetection(handmade / "img", handmade / "ann.json", with_masks=True)
    assert ds.num_classes == 3 and ds.cat_ids == [3, 7, 9] and ds.class_names == ["three", "seven", "nine"]
    image, t = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 40, 60)
    torch.testing.assert_close(image[:, 0, 0], torch.zeros(3), atol=0.02, rtol=0)  # ImageNet mean colour
    assert set(t) == {"boxes", "labels", "masks", "image_id", "orig_size", "size", "crowd_boxes"}
    assert t["image_id"] == 5 and t["orig_size"].tolist() == [40, 60] == t["size"].tolist()
    assert t["labels"].tolist() == [1] and t["labels"].dtype == torch.int64  # category 7 -> label 1
    assert t["boxes"].tolist() == [[10, 5, 30, 15]] and t["boxes"].dtype == torch.float32
    assert t["crowd_boxes"].tolist() == [[0, 0, 60, 40]]  # crowd apart; degenerate id 3 dropped
    assert t["masks"].shape == (1, 40, 60) and t["masks"].dtype == torch.uint8
    assert int(t["masks"].sum()) > 150


def test_rle_masks_and_no_segmentation_fallback(handmade):
    data = json.loads((handmade / "ann.json").read_text())
    data["annotations"][1]["iscrowd"] = 0
    (handmade / "ann2.json").write_text(json.dumps(data))
    ds = CocoDetection(handmade / "img", handmade / "ann2.json", with_masks=True)
    _, t = ds[0]
    assert t["masks"].shape[0] == 2 and int(t["masks"][1].sum()) == 30
    _, t = ds[1]  # no segmentation: the box is the mask
    assert int(t["masks"][0].sum()) == 10 * 20


def test_images_decode_lazily(handmade, monkeypatch):
    opened = []
    real_read = coco_module.read_image
    monkeypatch.setattr(coco_module, "read_image", lambda p: opened.append(p) or real_read(p))
    ds = CocoDetection(handmade / "img", handmade / "ann.json")
    assert opened == []
    ds[1]
    assert len(opened) == 1 and str(opened[0]).endswith("b.png")


def test_missing_or_resized_image_is_a_boxer_error(handmade):
    Image.new("RGB", (31, 50)).save(handmade / "img" / "b.png")
    ds = CocoDetection(handmade / "img", handmade / "ann.json")
    with pytest.raises(BoxerError, match="b.png.*image id 9"):
        ds[1]
    (handmade / "img" / "a.png").unlink()
    with pytest.raises(BoxerError, match="a.png"):
        ds[0]


def test_malformed_json_is_a_boxer_error(tmp_path):
    (tmp_path / "bad.json").write_text('{"images": [}')
    with pytest.raises(BoxerError, match="bad.json: invalid JSON at line 1"):
        CocoDetection(tmp_path, tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text('{"images": []}')
    with pytest.raises(BoxerError, match="boxer data check"):
        CocoDetection(tmp_path, tmp_path / "bad2.json")


def test_collate_pads_bottom_right(fashion_scenes_tiny):
    ds = CocoDetection(
        fashion_scenes_tiny / "train",
        fashion_scenes_tiny / "annotations" / "instances_train.json",
        transforms=build_transforms(True, base_size=128),
    )
    torch.manual_seed(0)
    samples = [ds[i] for i in range(4)]
    batch = collate_detection(samples)
    hmax = max(s[0].shape[1] for s in samples)
    wmax = max(s[0].shape[2] for s in samples)
    assert batch.images.shape == (4, 3, hmax, wmax) and batch.pad_mask.shape == (4, hmax, wmax)
    for i, (image, target) in enumerate(samples):
        h, w = image.shape[1:]
        assert torch.equal(batch.images[i, :, :h, :w], image)
        assert not batch.pad_mask[i, :h, :w].any() and batch.pad_mask[i].sum() == hmax * wmax - h * w
        assert (batch.images[i, :, h:, :] == 0).all() and (batch.images[i, :, :, w:] == 0).all()
        assert batch.targets[i] is target and target["size"].tolist() == [h, w]
    padded = collate_detection(samples, size_divisibility=32)
    assert padded.images.shape[-1] % 32 == 0 and padded.images.shape[-2] % 32 == 0
    moved = batch.to("cpu")
    assert moved.images.shape == batch.images.shape and moved.targets[0]["boxes"].device.type == "cpu"
    images, pad_mask, targets = batch  # a NamedTuple unpacks
    assert len(targets) == 4 and pad_mask.dtype == torch.bool


def test_normalisation_constant():
    assert np.allclose(IMAGENET_MEAN, (0.485, 0.456, 0.406))


def test_invalid_segmentation_names_the_annotation(handmade):
    data = json.loads((handmade / "ann.json").read_text())
    data["annotations"][1]["segmentation"]["counts"] = [5, 5000]
    (handmade / "ann3.json").write_text(json.dumps(data))
    ds = CocoDetection(handmade / "img", handmade / "ann3.json", with_masks=True)
    with pytest.raises(BoxerError, match="annotation id 2: .segmentation. RLE is invalid"):
        ds[0]
