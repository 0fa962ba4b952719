"""COCO evaluation (bbox and segm) on faster-coco-eval, with the standard 12-number summary.

faster-coco-eval (a C++ re-implementation of pycocotools' COCOeval) gives the same 12 stats as
pycocotools (tests/evaluation checks parity; pycocotools is the oracle) and is several times
faster; see benchmarks/coco_eval.py. Follows docs/CONTRACTS.md (`CocoEvaluator`).
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

__all__ = ["IOU_TYPES", "STAT_NAMES", "CocoEvaluator", "format_summary_lines", "records_for"]

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

    def _evaluate_type(self, iou_type: str, img_ids: list[int]) -> np.ndarray:
        coco_dt = self.coco_gt.loadRes(records_for(iou_type, self.results))
        ev = COCOeval_faster(self.coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        return np.asarray(ev.stats[:12], dtype=np.float64)

    def evaluate(self) -> dict[str, float]:
        """Computes the stats; keys like `bbox/AP`, `bbox/APs`, `segm/AR100` (-1 where COCO has no GT).

        Images never passed to `update` are left out (so a partial pass evaluates that subset);
        without any `update`, every ground-truth image counts.
        """
        self.synchronize()
        img_ids = sorted(self.img_ids) if self.img_ids else sorted(self.coco_gt.getImgIds())
        unknown = [i for i in img_ids if i not in self.coco_gt.imgs]
        if unknown:
            raise BoxerError(f"predictions for image ids not in the ground truth: {unknown[:5]}")
        stats: dict[str, float] = {}
        for iou_type in self.iou_types:
            values = self._evaluate_type(iou_type, img_ids)
            stats.update({f"{iou_type}/{name}": float(v) for name, v in zip(STAT_NAMES, values)})
            if self.verbose and _rank() == 0:
                print(f"IoU metric: {iou_type}")
                print("\n".join(format_summary_lines(values)))
        return stats

    def write_results(self, path: str | os.PathLike) -> Path:
        """Writes the COCO results JSON (a list of records) atomically; returns the path."""
        atomic_write_json(path, self.results)
        return Path(path)
