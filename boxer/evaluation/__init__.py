"""COCO evaluation: bbox / segm AP on faster-coco-eval and the standard results JSON."""

from __future__ import annotations

from boxer.evaluation.coco_evaluator import (
    IOU_TYPES,
    STAT_NAMES,
    CocoEvaluator,
    format_per_class_table,
    format_summary_lines,
    per_class_ap,
    per_class_metrics,
)
from boxer.evaluation.results import masks_to_rles, prediction_to_records

__all__ = [
    "IOU_TYPES",
    "STAT_NAMES",
    "CocoEvaluator",
    "format_per_class_table",
    "format_summary_lines",
    "per_class_ap",
    "per_class_metrics",
    "masks_to_rles",
    "prediction_to_records",
]
