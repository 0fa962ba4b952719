"""Dataset summary: instances per class and per COCO size range, as a plain-text table.

Size ranges follow the COCO evaluation on the annotation's `area`: small < 32², medium 32²..96²,
large > 96². Crowd annotations are counted apart and not binned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from boxer.data.coco_json import load_coco_json
from boxer.errors import BoxerError

__all__ = ["SIZE_RANGES", "DatasetSummary", "format_summary", "size_range", "summarize_coco"]

SIZE_RANGES = ("small", "medium", "large")


def size_range(area: float) -> str:
    """The COCO size range of an instance area in pixels."""
    if area < 32**2:
        return "small"
    return "medium" if area <= 96**2 else "large"


@dataclass
class DatasetSummary:
    """Counts of one COCO annotation file.

    Attributes:
        name: what is summarised (usually the file name).
        num_images: images listed.
        num_instances: non-crowd annotations.
        num_crowd: crowd annotations.
        images_without_annotations: images that no annotation points at.
        per_class: class name -> size range -> count (non-crowd), in category order.
    """

    name: str
    num_images: int = 0
    num_instances: int = 0
    num_crowd: int = 0
    images_without_annotations: int = 0
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)

    def per_range(self) -> dict[str, int]:
        return {r: sum(c[r] for c in self.per_class.values()) for r in SIZE_RANGES}

    def range_fractions(self) -> dict[str, float]:
        """Share of the non-crowd instances in each size range (0 when there are none)."""
        counts = self.per_range()
        total = max(sum(counts.values()), 1)
        return {r: counts[r] / total for r in SIZE_RANGES}


def summarize_coco(ann: str | os.PathLike | dict[str, Any], *, name: str | None = None) -> DatasetSummary:
    """Counts instances per class and size range of a COCO annotation file (or its parsed dict)."""
    data = ann if isinstance(ann, dict) else load_coco_json(ann)
    summary = DatasetSummary(name=name or (str(ann) if not isinstance(ann, dict) else "annotations"))
    try:
        _count(data, summary)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as err:
        raise BoxerError(
            f"{summary.name}: malformed COCO annotations ({type(err).__name__}: {err}); "
            "run `boxer data check`"
        ) from None
    return summary


def _count(data: dict[str, Any], summary: DatasetSummary) -> None:
    cats = {c.get("id"): str(c.get("name", c.get("id"))) for c in data.get("categories", [])}
    summary.per_class = {n: dict.fromkeys(SIZE_RANGES, 0) for n in cats.values()}
    images = data.get("images", [])
    summary.num_images = len(images)
    seen = set()
    for a in data.get("annotations", []):
        seen.add(a.get("image_id"))
        if a.get("iscrowd", 0):
            summary.num_crowd += 1
            continue
        bbox = a.get("bbox") or [0, 0, 0, 0]
        area = a.get("area", bbox[2] * bbox[3] if len(bbox) == 4 else 0)
        name_ = cats.get(a.get("category_id"), f"unknown id {a.get('category_id')}")
        summary.per_class.setdefault(name_, dict.fromkeys(SIZE_RANGES, 0))[size_range(float(area))] += 1
        summary.num_instances += 1
    summary.images_without_annotations = sum(1 for im in images if im.get("id") not in seen)


def format_summary(summary: DatasetSummary) -> str:
    """A plain-text table: one row per class, columns per size range, totals and shares."""
    width = max([len("class")] + [len(n) for n in summary.per_class]) + 2
    lines = [
        f"{summary.name}: {summary.num_images} images, {summary.num_instances} instances "
        f"({summary.num_crowd} crowd), {summary.images_without_annotations} images without annotations",
        f"{'class':<{width}}" + "".join(f"{r:>8}" for r in SIZE_RANGES) + f"{'total':>8}",
    ]
    for name, counts in summary.per_class.items():
        lines.append(
            f"{name:<{width}}"
            + "".join(f"{counts[r]:>8}" for r in SIZE_RANGES)
            + f"{sum(counts.values()):>8}"
        )
    totals = summary.per_range()
    lines.append(
        f"{'all':<{width}}" + "".join(f"{totals[r]:>8}" for r in SIZE_RANGES) + f"{summary.num_instances:>8}"
    )
    shares = summary.range_fractions()
    lines.append(f"{'share':<{width}}" + "".join(f"{100 * shares[r]:>7.1f}%" for r in SIZE_RANGES))
    return "\n".join(lines)
