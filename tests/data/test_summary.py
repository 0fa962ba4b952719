"""Dataset summary: COCO size-range borders, per-class counts, crowd apart."""

from __future__ import annotations

from boxer.data.summary import format_summary, size_range, summarize_coco


def test_size_range_borders():
    assert [size_range(a) for a in (0, 1023.9, 1024, 9216, 9216.1)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
    ]


def test_counts_per_class_and_range():
    data = {
        "images": [{"id": 1}, {"id": 2}, {"id": 3}],
        "categories": [{"id": 4, "name": "cat"}, {"id": 8, "name": "dog"}],
        "annotations": [
            {"image_id": 1, "category_id": 4, "area": 100, "bbox": [0, 0, 10, 10]},
            {"image_id": 1, "category_id": 8, "bbox": [0, 0, 100, 100]},  # no area: w * h
            {"image_id": 2, "category_id": 8, "area": 2000, "bbox": [0, 0, 50, 40]},
            {"image_id": 2, "category_id": 8, "area": 5, "bbox": [0, 0, 5, 1], "iscrowd": 1},
        ],
    }
    s = summarize_coco(data, name="toy")
    assert s.per_class == {
        "cat": {"small": 1, "medium": 0, "large": 0},
        "dog": {"small": 0, "medium": 1, "large": 1},
    }
    assert (s.num_images, s.num_instances, s.num_crowd, s.images_without_annotations) == (3, 3, 1, 1)
    text = format_summary(s)
    assert text.splitlines()[0] == "toy: 3 images, 3 instances (1 crowd), 1 images without annotations"
    assert "33.3%" in text.splitlines()[-1]
