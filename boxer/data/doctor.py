"""Dataset doctor: checks a COCO JSON and its image folder before anything trains or evaluates on it.

Errors (the dataset is refused): invalid JSON or schema, duplicate image / annotation / category
ids, annotations that point at unknown images or categories, boxes that are non-finite, have
w or h <= 0 or extend past the image (more than `BOX_TOLERANCE` px), segmentations that do not fit
their image, image files that are missing, unreadable, cut short, corrupt, too large (Pillow's
decompression-bomb limit) or of another size than the JSON says.
Warnings (allowed): images with no annotations, two images sharing one file name, pixel modes other
than RGB, L, RGBA and P (16-bit grey, CMYK, ...: read, but converted).

Every problem names the file, the id and what is wrong. Every image is decoded in full by
`boxer.data.images` (the reader of training, evaluation and predict, so a file that passes here
decodes there, with the same pixels), on a few threads; one bad file never stops the report.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxer.data.coco_json import load_coco_json
from boxer.data.images import ImageReadError, inspect_image
from boxer.errors import BoxerError

__all__ = [
    "BOX_TOLERANCE",
    "DoctorReport",
    "Problem",
    "check_annotations",
    "check_dataset",
    "require_valid_dataset",
]

BOX_TOLERANCE = 1.0  # px a box may extend past the image border (float rounding in exported boxes)
_MAX_LINES_IN_ERROR = 30


@dataclass(frozen=True)
class Problem:
    """One finding: the file it is in, which record (`image id 3`, `annotation id 17`), what is wrong."""

    file: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}" if self.where else f"{self.file}: {self.message}"


@dataclass
class DoctorReport:
    """Result of `check_dataset`: errors refuse the dataset, warnings do not."""

    ann_file: str
    images_dir: str | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    num_images: int = 0
    num_annotations: int = 0
    num_categories: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self, *, max_warnings: int | None = 20) -> str:
        """A readable report; every error gets one line, warnings are capped at `max_warnings`."""
        lines = [
            f"annotations: {self.ann_file} ({self.num_images} images, {self.num_annotations} annotations, "
            f"{self.num_categories} categories)",
            f"images: {self.images_dir if self.images_dir is not None else '(not checked)'}",
        ]
        if self.errors:
            lines.append(f"errors ({len(self.errors)}):")
            lines += [f"  {p}" for p in self.errors]
        if self.warnings:
            shown = self.warnings if max_warnings is None else self.warnings[:max_warnings]
            lines.append(f"warnings ({len(self.warnings)}):")
            lines += [f"  {p}" for p in shown]
            if len(shown) < len(self.warnings):
                lines.append(f"  ... and {len(self.warnings) - len(shown)} more warnings")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: {len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v: int | float) -> bool:
    """math.isfinite that also takes ints too large for a float (JSON allows them)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


class _Checker:
    """Collects problems while walking one parsed COCO dict."""

    def __init__(self, ann_file: str) -> None:
        self.file = ann_file
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, where: str, message: str, file: str | None = None) -> None:
        self.errors.append(Problem(file or self.file, where, message))

    def warn(self, where: str, message: str, file: str | None = None) -> None:
        self.warnings.append(Problem(file or self.file, where, message))

    def records(self, data: dict, key: str, required: tuple[str, ...]) -> list[tuple[str, dict]]:
        """The dict records of list `key` with an int id and the required fields, named for messages."""
        value = data.get(key)
        if not isinstance(value, list):
            self.error(
                "", f"'{key}' must be a list, got {type(value).__name__ if key in data else 'nothing'}"
            )
            return []
        kind = key.rstrip("s") if key != "categories" else "category"
        out, ids = [], Counter()
        for i, rec in enumerate(value):
            if not isinstance(rec, dict):
                self.error(f"{key}[{i}]", f"must be an object, got {type(rec).__name__}")
                continue
            if not _is_int(rec.get("id")):
                self.error(f"{key}[{i}]", f"'id' must be an integer, got {rec.get('id')!r}")
                continue
            name = f"{kind} id {rec['id']}"
            missing = [f for f in required if f not in rec]
            if missing:
                self.error(name, f"missing field(s) {', '.join(missing)}")
                continue
            ids[rec["id"]] += 1
            out.append((name, rec))
        for dup, n in ids.items():
            if n > 1:
                self.error(f"{kind} id {dup}", f"duplicate id ({n} {key} share it)")
        return out


def _check_image_record(c: _Checker, name: str, im: dict) -> bool:
    ok = True
    if not isinstance(im["file_name"], str) or not im["file_name"]:
        c.error(name, f"'file_name' must be a non-empty string, got {im['file_name']!r}")
        ok = False
    for key in ("width", "height"):
        if not _is_int(im[key]) or im[key] <= 0:
            c.error(name, f"'{key}' must be a positive integer, got {im[key]!r}")
            ok = False
    return ok


def _check_bbox(c: _Checker, name: str, bbox: Any, image: dict | None) -> None:
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_num(v) for v in bbox):
        c.error(name, f"'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
        return
    if not all(_finite(v) for v in bbox):
        c.error(name, f"bbox {bbox} is not finite")
        return
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        what = " and ".join(f"{k} {v:g}" for k, v in (("width", w), ("height", h)) if v <= 0)
        c.error(name, f"bbox {what} <= 0")
        return
    if image is not None:
        W, H, t = image["width"], image["height"], BOX_TOLERANCE
        if x < -t or y < -t or x + w > W + t or y + h > H + t:
            c.error(
                name, f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] lies outside the {W}x{H} image id {image['id']}"
            )


def rle_string_runs(counts: str) -> list[int] | None:
    """Decodes a compressed COCO RLE string into its runs (pycocotools' rleFrString), or None if invalid.

    Pure Python on purpose: pycocotools can abort the process on a corrupt string.
    """
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                return None  # the string ends inside a value
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def _rle_decodes(rle: dict) -> bool:
    """Whether an RLE (compressed string or list of runs) has non-negative runs covering h * w pixels."""
    h, w = rle["size"]
    runs = rle["counts"] if isinstance(rle["counts"], list) else rle_string_runs(rle["counts"])
    if runs is None or not all(_is_int(v) and v >= 0 for v in runs):
        return False
    return sum(runs) == h * w


def segmentation_problem(seg: Any, image: dict | None) -> str | None:
    """What is wrong with a COCO segmentation (polygons or RLE) of `image`, or None.

    `CocoDetection` asks this before pycocotools decodes, which can abort the process on bad input.
    """
    if isinstance(seg, list):
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(map(_is_num, poly)):
                return "'segmentation' polygons must be lists of at least 3 (x, y) number pairs"
            if not all(_finite(v) for v in poly):
                return "'segmentation' polygon is not finite"
        return None
    if not isinstance(seg, dict):
        return f"'segmentation' must be polygons or an RLE object, got {type(seg).__name__}"
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        return f"'segmentation' RLE needs 'size' [h, w], got {size!r}"
    if not isinstance(counts, (str, list)):
        return f"'segmentation' RLE needs 'counts' (string or list), got {type(counts).__name__}"
    if image is not None and size != [image["height"], image["width"]]:
        return (
            f"'segmentation' RLE size {size} differs from image id {image['id']} "
            f"([h, w] = [{image['height']}, {image['width']}])"
        )
    if not _rle_decodes(seg):
        return "'segmentation' RLE is invalid (its runs do not cover size[0] * size[1] pixels)"
    return None


def _check_annotation(c: _Checker, name: str, ann: dict, images: dict, cat_ids: set) -> None:
    image = images.get(ann["image_id"]) if _is_int(ann["image_id"]) else None
    if image is None:
        c.error(name, f"image_id {ann['image_id']!r} is not in 'images'")
    if not _is_int(ann["category_id"]) or ann["category_id"] not in cat_ids:
        c.error(name, f"category_id {ann['category_id']!r} is not in 'categories'")
    _check_bbox(c, name, ann["bbox"], image)
    if ann.get("iscrowd", 0) not in (0, 1):
        c.error(name, f"'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
    if "area" in ann and (not _is_num(ann["area"]) or not _finite(ann["area"]) or ann["area"] < 0):
        c.error(name, f"'area' must be a finite number >= 0, got {ann['area']!r}")
    if "segmentation" in ann:
        problem = segmentation_problem(ann["segmentation"], image)
        if problem is not None:
            c.error(name, problem)


def check_annotations(
    data: dict[str, Any], ann_file: str
) -> tuple[list[Problem], list[Problem], dict[int, dict]]:
    """Schema and consistency checks of a parsed COCO dict (no image files are touched).

    Returns:
        errors, warnings, and the valid image records by id (for the file checks).
    """
    c = _Checker(ann_file)
    categories = c.records(data, "categories", ("name",))
    for name, cat in categories:
        if not isinstance(cat["name"], str):
            c.error(name, f"'name' must be a string, got {cat['name']!r}")
    images: dict[int, dict] = {}
    for name, im in c.records(data, "images", ("file_name", "width", "height")):
        if _check_image_record(c, name, im):
            images.setdefault(im["id"], im)  # a duplicate id is already an error; keep the first
    annotations = c.records(data, "annotations", ("image_id", "category_id", "bbox"))
    cat_ids = {cat["id"] for _, cat in categories}
    annotated = set()
    for name, ann in annotations:
        _check_annotation(c, name, ann, images, cat_ids)
        if _is_int(ann["image_id"]):
            annotated.add(ann["image_id"])
    for dup, n in Counter(im["file_name"] for im in images.values()).items():
        if n > 1:
            c.warn(f"file_name {dup}", f"{n} images share this file")
    for image_id, im in images.items():
        if image_id not in annotated:
            c.warn(f"image id {image_id}", f"no annotations ({im['file_name']})")
    return c.errors, c.warnings, images


def _check_image_file(images_dir: Path, image_id: int, im: dict) -> tuple[Problem | None, Problem | None]:
    """(error, warning) of one image file, decoded in full by the reader training and predict use."""
    path = images_dir / im["file_name"]
    where = f"image id {image_id}"
    try:
        info = inspect_image(path)
    except ImageReadError as err:
        return Problem(str(path), where, err.reason), None
    if (info.width, info.height) != (im["width"], im["height"]):
        message = (
            f"size on disk {info.width}x{info.height} differs from the JSON's "
            f"{im['width']}x{im['height']} (w x h)"
        )
        return Problem(str(path), where, message), None
    return None, None if info.note is None else Problem(str(path), where, info.note)


def check_dataset(
    images_dir: str | os.PathLike | None, ann_file: str | os.PathLike, *, workers: int = 8
) -> DoctorReport:
    """Runs every check on a COCO JSON and (when `images_dir` is given) its image files.

    Args:
        images_dir: folder the images' `file_name`s are relative to; None skips the file checks.
        ann_file: the COCO annotation JSON.
        workers: threads decoding the images.

    Returns:
        the report; a JSON that cannot be parsed is reported as a single error.
    """
    report = DoctorReport(ann_file=str(ann_file), images_dir=None if images_dir is None else str(images_dir))
    try:
        data = load_coco_json(ann_file)
    except BoxerError as err:
        report.errors.append(Problem(str(ann_file), "", str(err).split(": ", 1)[-1]))
        return report
    for key in ("images", "annotations", "categories"):
        value = data.get(key)
        setattr(report, f"num_{key}", len(value) if isinstance(value, list) else 0)
    report.errors, report.warnings, images = check_annotations(data, str(ann_file))
    if images_dir is not None:
        folder = Path(images_dir)
        if not folder.is_dir():
            report.errors.append(Problem(str(folder), "", "image folder not found"))
            return report
        with ThreadPoolExecutor(max(1, workers)) as pool:
            found = list(pool.map(lambda kv: _check_image_file(folder, *kv), images.items()))
        report.errors += [error for error, _ in found if error is not None]
        report.warnings += [warning for _, warning in found if warning is not None]
    return report


def require_valid_dataset(images_dir: str | os.PathLike | None, ann_file: str | os.PathLike) -> DoctorReport:
    """Refuses a dataset with errors: raises BoxerError with one line per problem (warnings pass).

    Training and evaluation call this at start, so bad data stops them with a message, not a traceback.
    """
    report = check_dataset(images_dir, ann_file)
    if not report.ok:
        lines = [str(p) for p in report.errors[:_MAX_LINES_IN_ERROR]]
        if len(report.errors) > len(lines):
            lines.append(f"... and {len(report.errors) - len(lines)} more (run `boxer data check`)")
        raise BoxerError(f"{ann_file}: the dataset has {len(report.errors)} errors:\n" + "\n".join(lines))
    return report
