"""Dataset doctor: every listed problem is caught with a message naming the file, the id, the problem."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from image_helpers import png_bytes
from PIL import Image

from boxer.data import CocoDetection
from boxer.data.doctor import check_dataset, require_valid_dataset
from boxer.errors import BoxerError


@pytest.fixture()
def dataset(tmp_path, fashion_scenes_tiny):
    """A writable copy of the tiny val split: (images dir, annotation path, parsed JSON)."""
    images = tmp_path / "val"
    shutil.copytree(fashion_scenes_tiny / "val", images)
    ann = tmp_path / "instances_val.json"
    data = json.loads((fashion_scenes_tiny / "annotations" / "instances_val.json").read_text())
    ann.write_text(json.dumps(data))
    return images, ann, data


def _errors(images, ann, data) -> list[str]:
    ann.write_text(json.dumps(data))
    return [str(p) for p in check_dataset(images, ann).errors]


def test_clean_dataset_passes(dataset):
    images, ann, _ = dataset
    report = check_dataset(images, ann)
    assert report.ok and report.errors == [] and report.num_images == 6
    assert "OK: 0 errors" in report.format()
    require_valid_dataset(images, ann)


# (how to break the first annotation / image, expected message fragment)
ANNOTATION_BREAKS = [
    (lambda a: a["bbox"].__setitem__(2, -3), "annotation id 1: bbox width -3 <= 0"),
    (lambda a: a["bbox"].__setitem__(3, 0), "annotation id 1: bbox height 0 <= 0"),
    (lambda a: a["bbox"].__setitem__(0, float("nan")), "annotation id 1: bbox [nan"),
    (lambda a: a["bbox"].__setitem__(1, float("inf")), "is not finite"),
    (lambda a: a["bbox"].__setitem__(0, 120.0), "annotation id 1: bbox [120"),
    (lambda a: a.__setitem__("bbox", [1, 2, 3]), "annotation id 1: 'bbox' must be 4 numbers"),
    (lambda a: a.__setitem__("image_id", 999), "annotation id 1: image_id 999 is not in 'images'"),
    (lambda a: a.__setitem__("category_id", 42), "annotation id 1: category_id 42 is not in 'categories'"),
    (lambda a: a.pop("category_id"), "annotation id 1: missing field(s) category_id"),
    (lambda a: a.__setitem__("iscrowd", 2), "'iscrowd' must be 0 or 1"),
    (lambda a: a["segmentation"].__setitem__("size", [10, 10]), "RLE size [10, 10] differs from image id"),
    (lambda a: a["segmentation"].__setitem__("counts", "!!"), "RLE is invalid"),
]


@pytest.mark.parametrize("brk, message", ANNOTATION_BREAKS)
def test_annotation_problems(dataset, brk, message):
    images, ann, data = dataset
    brk(data["annotations"][0])
    errors = _errors(images, ann, data)
    assert len(errors) == 1 and message in errors[0] and str(ann) in errors[0], errors


@pytest.mark.parametrize("kind, message", [
    ("images", "image id 1: duplicate id (2 images share it)"),
    ("annotations", "annotation id 1: duplicate id (2 annotations share it)"),
    ("categories", "category id 1: duplicate id (2 categories share it)"),
])  # fmt: skip
def test_duplicate_ids(dataset, kind, message):
    images, ann, data = dataset
    data[kind][1]["id"] = data[kind][0]["id"]
    errors = _errors(images, ann, data)
    assert any(message in e for e in errors), errors


def test_schema_problems(dataset):
    images, ann, data = dataset
    assert any(
        "'images' must be a list, got NoneType" in e for e in _errors(images, ann, {**data, "images": None})
    )
    broken = {k: v for k, v in data.items() if k != "categories"}
    assert any("'categories' must be a list, got nothing" in e for e in _errors(images, ann, broken))
    data["images"][0]["width"] = "wide"
    assert any("image id 1: 'width' must be a positive integer" in e for e in _errors(images, ann, data))


def test_json_syntax(dataset):
    images, ann, _ = dataset
    ann.write_text('{"images": [1, 2,, ]}')
    errors = [str(p) for p in check_dataset(images, ann).errors]
    assert errors == [f"{ann}: invalid JSON at line 1 column 18: Expecting value"]


def test_image_file_problems(dataset):
    images, ann, data = dataset
    (images / "000001.png").unlink()
    (images / "000002.png").write_bytes(b"not an image")
    Image.new("RGB", (100, 128)).save(images / "000003.png")
    errors = _errors(images, ann, data)
    assert f"{images / '000001.png'}: image id 1: image file is missing" in errors
    assert any(e.startswith(f"{images / '000002.png'}: image id 2: image file is unreadable") for e in errors)
    assert (
        f"{images / '000003.png'}: image id 3: size on disk 100x128 differs from the JSON's 128x128 (w x h)"
        in errors
    )
    assert len(errors) == 3


def test_images_without_annotations_are_warnings(dataset):
    images, ann, data = dataset
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2]
    ann.write_text(json.dumps(data))
    report = check_dataset(images, ann)
    assert report.ok and [str(w) for w in report.warnings] == [
        f"{ann}: image id 2: no annotations (000002.png)"
    ]


def test_require_valid_dataset_lists_every_problem(dataset):
    images, ann, data = dataset
    data["annotations"][0]["bbox"][2] = -3
    data["annotations"][1]["category_id"] = 77
    ann.write_text(json.dumps(data))
    with pytest.raises(BoxerError) as info:
        require_valid_dataset(images, ann)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{ann}: the dataset has 2 errors:"
    assert "annotation id 1: bbox width -3 <= 0" in lines[1] and "annotation id 2: category_id 77" in lines[2]


def test_image_data_is_verified_not_only_the_header(dataset):
    """A PNG cut to a third of its bytes, or whose image data is short, fails; the doctor's line is
    the one CocoDetection raises for the same file."""
    images, ann, data = dataset
    full = (images / "000001.png").read_bytes()
    (images / "000001.png").write_bytes(full[: len(full) // 3])
    (images / "000002.png").write_bytes(png_bytes(128, 128, rows=3))
    errors = _errors(images, ann, data)
    assert len(errors) == 2
    assert errors[0].startswith(f"{images / '000001.png'}: image id 1: PNG cut short inside chunk 'IDAT'")
    assert errors[1] == (
        f"{images / '000002.png'}: image id 2: PNG image data holds 1155 bytes, the header declares 49280"
    )
    dataset_ = CocoDetection(images, ann)
    for index, line in enumerate(errors):
        with pytest.raises(BoxerError) as info:
            dataset_[index]
        assert str(info.value) == line


def test_a_decompression_bomb_does_not_stop_the_report(dataset, monkeypatch):
    images, ann, data = dataset
    Image.new("RGB", (128, 4096)).save(images / "000003.png")
    data["images"][2].update(height=4096)
    (images / "000004.png").write_bytes(b"junk")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 128 * 1024)
    errors = _errors(images, ann, data)
    assert any("000003.png: image id 3: refused as a decompression bomb" in e for e in errors)
    assert any("000004.png: image id 4: image file is unreadable" in e for e in errors)


def test_unusual_pixel_modes_are_warnings(dataset):
    images, ann, data = dataset
    Image.fromarray(np.full((128, 128), 40000, np.uint16)).save(images / "000001.png")
    Image.new("LA", (128, 128)).save(images / "000002.png")
    Image.new("P", (128, 128)).save(images / "000003.png")
    ann.write_text(json.dumps(data))
    report = check_dataset(images, ann)
    assert report.ok
    notes = [str(w) for w in report.warnings]
    assert f"{images / '000001.png'}: image id 1: pixel mode I;16 (16-bit grey, scaled to 8 bits)" in notes
    assert f"{images / '000002.png'}: image id 2: pixel mode LA (grey with alpha, alpha ignored)" in notes
    assert not any("000003.png" in n for n in notes)
