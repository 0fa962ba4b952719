"""COCO evaluation (bbox and segm) on faster-coco-eval, with the standard 12-number summary.

faster-coco-eval (a C++ re-implementation of pycocotools' COCOeval) gives the same 12 stats as
pycocotools (tests/evaluation checks parity; pycocotools is the oracle) and is several times
faster; see benchmarks/coco_eval.py. Follows docs/CONTRACTS.md (`CocoEvaluator`).

Per-class AP and AP50 come from COCOeval's accumulated `precision` array `[T, R, K, A, M]` (IoU
thresholds, recall points, categories, area ranges, max detections) the standard way (as
detectron2's COCOEvaluator): area "all", 100 detections, the mean of the entries > -1; a category
without ground truth gets -1. That equals COCOeval run on the one category (tests/evaluation).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist
from faster_coco_eval import COCO, COCOeval_faster

from boxer.data.coco_json import load_coco_json
from boxer.data.io import atomic_write_json
from boxer.errors import BoxerError
from boxer.evaluation.results import prediction_to_records

__all__ = [
    "IOU_TYPES",
    "STAT_NAMES",
    "CocoEvaluator",
    "format_per_class_table",
    "format_summary_lines",
    "per_class_ap",
    "per_class_metrics",
    "records_for",
]

log = logging.getLogger(__name__)

IOU_TYPES = ("bbox", "segm")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_LINES = [  # (AP or AR, IoU, area, maxDets) of COCOeval.summarize, in stats order
    ("Precision", "0.50:0.95", "all", 100),
    ("Precision", "0.50", "all", 100),
    ("Precision", "0.75", "all", 100),
    ("Precision", "0.50:0.95", "small", 100),
    ("Precision", "0.50:0.95", "medium", 100),
    ("Precision", "0.50:0.95", "large", 100),
    ("Recall", "0.50:0.95", "all", 1),
    ("Recall", "0.50:0.95", "all", 10),
    ("Recall", "0.50:0.95", "all", 100),
    ("Recall", "0.50:0.95", "small", 100),
    ("Recall", "0.50:0.95", "medium", 100),
    ("Recall", "0.50:0.95", "large", 100),
]


def format_summary_lines(stats: Sequence[float]) -> list[str]:
    """COCOeval's standard 12 summary lines for the first 12 `stats`."""
    lines = []
    for (kind, iou, area, max_dets), value in zip(_LINES, stats):
        title, short = f"Average {kind}", "(AP)" if kind == "Precision" else "(AR)"
        lines.append(
            f" {title:<18} {short} @[ IoU={iou:<9} | area={area:>6} | maxDets={max_dets:>3d} ] = {value:0.3f}"
        )
    return lines


def per_class_ap(precision: np.ndarray, iou_thrs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-category AP (IoU 0.50:0.95) and AP50 from COCOeval's `eval["precision"]`.

    Args:
        precision: `[T, R, K, A, M]`, -1 where a category has no ground truth.
        iou_thrs: the T IoU thresholds (`params.iouThrs`); one of them must be 0.5.

    Returns:
        (ap, ap50), each `[K]` in the order of `params.catIds`, -1 for categories without GT.
    """
    p = np.asarray(precision)[:, :, :, 0, -1]  # T, R, K at area "all", the most detections
    t50 = int(np.argmin(np.abs(np.asarray(iou_thrs) - 0.5)))

    def mean_valid(x: np.ndarray) -> np.ndarray:  # [..., K] -> [K]
        x = x.reshape(-1, x.shape[-1])
        valid = x > -1
        total = np.where(valid, x, 0.0).sum(axis=0)
        return np.where(valid.any(axis=0), total / np.maximum(valid.sum(axis=0), 1), -1.0)

    return mean_valid(p), mean_valid(p[t50])


def per_class_metrics(
    metrics: dict[str, float], iou_type: str = "bbox", name: str = "AP50"
) -> dict[str, float]:
    """Class name -> value of the per-class keys `<iou_type>/<name>/<class>` of `evaluate`'s dict."""
    prefix = f"{iou_type}/{name}/"
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}


def format_per_class_table(
    iou_type: str, names: Sequence[str], ap: Sequence[float], ap50: Sequence[float]
) -> list[str]:
    """A short table of per-class AP50 and AP (two classes per row beyond 10 classes)."""
    width = max([len(n) for n in names] + [5])
    cells = [f"{n:<{width}}  {a50:6.3f}  {a:6.3f}" for n, a, a50 in zip(names, ap, ap50)]
    head = f"{'class':<{width}}  {'AP50':>6}  {'AP':>6}"
    cols = 1 if len(cells) <= 10 else 2
    rows = [" | ".join(cells[i : i + cols]) for i in range(0, len(cells), cols)]
    return [f"Per-class {iou_type} AP50 and AP (-1: no ground truth)", " | ".join([head] * cols), *rows]


def records_for(iou_type: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shallow copies of the records as `loadRes` expects them for one IoU type.

    `loadRes` adds keys to the records it gets, so it never sees ours; for segm the `bbox` is left
    out so that detection areas come from the masks (as detectron2 does).
    """
    drop = "bbox" if iou_type == "segm" else "segmentation"
    return [{k: v for k, v in r.items() if k != drop} for r in results]


def _load_gt(ann: str | os.PathLike | Any) -> COCO:
    """Ground truth as a faster-coco-eval COCO: from a path, a dict, or a (pycocotools) COCO object."""
    if isinstance(ann, COCO):
        return ann
    if isinstance(ann, (str, os.PathLike)):
        return COCO(load_coco_json(ann))
    if isinstance(ann, dict):
        return COCO(ann)
    if hasattr(ann, "dataset"):  # pycocotools.coco.COCO
        return COCO(ann.dataset)
    raise TypeError(f"expected an annotation file, a dict or a COCO object, got {type(ann).__name__}")


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class CocoEvaluator:
    """Collects predictions over a dataset and computes COCO AP/AR.

    Args:
        ann_file_or_coco: the ground-truth annotation JSON (path), its parsed dict, or a COCO object.
        iou_types: "bbox" and/or "segm".
        cat_ids: contiguous label -> category id of the ground truth (`CocoDetection.cat_ids`).
        verbose: print the 12-line summary per IoU type (on rank 0) in `evaluate`.
    """

    def __init__(
        self,
        ann_file_or_coco: str | os.PathLike | dict | Any,
        *,
        iou_types: Sequence[str] = ("bbox",),
        cat_ids: Sequence[int],
        verbose: bool = True,
    ) -> None:
        bad = [t for t in iou_types if t not in IOU_TYPES]
        if bad or not iou_types:
            raise BoxerError(f"iou_types: expected some of {IOU_TYPES}, got {list(iou_types)}")
        self.coco_gt = _load_gt(ann_file_or_coco)
        known = set(self.coco_gt.getCatIds())
        unknown = [c for c in cat_ids if c not in known]
        if unknown:
            raise BoxerError(f"cat_ids: {unknown} are not categories of the ground truth")
        self.iou_types = tuple(iou_types)
        self.cat_ids = [int(c) for c in cat_ids]
        self.verbose = verbose
        self.reset()

    def reset(self) -> None:
        """Forgets all predictions."""
        self.results: list[dict[str, Any]] = []
        self.img_ids: set[int] = set()

    def update(self, predictions: dict[int, dict[str, Any]]) -> None:
        """Adds predictions keyed by image id (an empty prediction still marks the image as evaluated)."""
        with_masks = "segm" in self.iou_types
        for image_id, pred in predictions.items():
            self.img_ids.add(int(image_id))
            self.results += prediction_to_records(int(image_id), pred, self.cat_ids, with_masks=with_masks)

    def synchronize(self) -> None:
        """Gathers results and image ids from every process when torch.distributed is running."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self.results, sorted(self.img_ids)))
        self.results = [r for res, _ in gathered for r in res]
        self.img_ids = {i for _, ids in gathered for i in ids}

    def class_names(self) -> list[str]:
        """The GT category names in `cat_ids` order; a name used twice gets `#<id>` appended."""
        names = [str(self.coco_gt.cats[c].get("name", c)) for c in self.cat_ids]
        return [f"{n}#{c}" if names.count(n) > 1 else n for n, c in zip(names, self.cat_ids)]

    def _evaluate_type(self, iou_type: str, img_ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The 12 stats, and per-class AP and AP50 in `cat_ids` order."""
        coco_dt = self.coco_gt.loadRes(records_for(iou_type, self.results))
        ev = COCOeval_faster(self.coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
        ev.params.imgIds = img_ids
        ev.params.catIds = sorted(self.cat_ids)  # a subset of the categories: the evaluated ones only
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        ap, ap50 = per_class_ap(ev.eval["precision"], ev.params.iouThrs)
        index = [list(ev.params.catIds).index(c) for c in self.cat_ids]
        return np.asarray(ev.stats[:12], dtype=np.float64), ap[index], ap50[index]

    def evaluate(self) -> dict[str, float]:
        """Computes the stats; keys like `bbox/AP`, `bbox/APs`, `segm/AR100` (-1 where COCO has no GT),
        and per class `bbox/AP/<class name>`, `bbox/AP50/<class name>` (likewise for segm).

        Images never passed to `update` are left out (so a partial pass evaluates that subset);
        without any `update`, every ground-truth image counts.
        """
        self.synchronize()
        img_ids = sorted(self.img_ids) if self.img_ids else sorted(self.coco_gt.getImgIds())
        unknown = [i for i in img_ids if i not in self.coco_gt.imgs]
        if unknown:
            raise BoxerError(f"predictions for image ids not in the ground truth: {unknown[:5]}")
        stats: dict[str, float] = {}
        names = self.class_names()
        for iou_type in self.iou_types:
            values, ap, ap50 = self._evaluate_type(iou_type, img_ids)
            stats.update({f"{iou_type}/{name}": float(v) for name, v in zip(STAT_NAMES, values)})
            stats.update({f"{iou_type}/AP/{n}": float(v) for n, v in zip(names, ap)})
            stats.update({f"{iou_type}/AP50/{n}": float(v) for n, v in zip(names, ap50)})
            if self.verbose and _rank() == 0:
                print(f"IoU metric: {iou_type}")
                print("\n".join(format_summary_lines(values)))
                print("\n".join(format_per_class_table(iou_type, names, ap, ap50)))
        return stats

    def write_results(self, path: str | os.PathLike) -> Path:
        """Writes the COCO results JSON (a list of records) atomically; returns the path."""
        atomic_write_json(path, self.results)
        return Path(path)
