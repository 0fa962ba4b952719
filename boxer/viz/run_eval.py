"""What a run's checkpoint does on its val split: per-class AP, precision-recall curves, confusions.

The run's `best` checkpoint (else `last`) predicts the val split named by its `config.json`, as
`boxer eval` does (`boxer/engine/runner.py`: `load_detector`, `coco_dataset`, `predict_batches`).
COCOeval (faster-coco-eval, as `boxer/evaluation/coco_evaluator.py`) gives the precision array
`[T, R, K, A, M]`; per-class AP and AP50 come from `per_class_ap`, the precision-recall curves are
its IoU 0.5 slice (area "all", 100 detections). The confusion matrix matches, per image and
greedily by score, detections of score >= `score` to ground-truth boxes of any class at IoU >= 0.5:
row = true class (last row: no object), column = predicted class (last column: missed).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from boxer.errors import BoxerError


@dataclass
class EvalResult:
    """The val evaluation of one run.

    Attributes:
        class_names: K names (contiguous label order).
        ap, ap50: [K] per-class AP (IoU .50:.95) and AP50; -1 without ground truth.
        recall: [R] recall thresholds; precision50: [R, K] precision at IoU 0.5 (-1: no GT).
        confusion: [K + 1, K + 1] counts (rows: true class + "no object", columns: predicted + "missed").
        records: the COCO results records (the data file).
    """

    class_names: list[str]
    ap: np.ndarray
    ap50: np.ndarray
    recall: np.ndarray
    precision50: np.ndarray
    confusion: np.ndarray
    records: list[dict]


def run_checkpoint(run: Path) -> Path:
    """RUN/best, else RUN/last."""
    for name in ("best", "last"):
        if (run / name).is_dir():
            return run / name
    raise BoxerError(f"{run}: no best/ or last/ checkpoint")


def predict_val(run: Path, *, device: str = "cpu", batch_size: int = 2):
    """(predictions image id -> dict, the val dataset, the checkpoint config) of the run's checkpoint."""
    from boxer.data import collate_detection
    from boxer.engine.data import coco_dataset, resolve_split
    from boxer.engine.distributed import pick_device
    from boxer.engine.evaluate import predict_batches
    from boxer.engine.runner import _sizes_of, load_detector

    model, config = load_detector(run_checkpoint(run), pick_device(device))
    cfg = _sizes_of(config)
    split = resolve_split(cfg.data, "val", images=cfg.val_images, ann_file=cfg.val_ann)
    dataset = coco_dataset(
        split, train=False, image_size=cfg.image_size, max_size=cfg.max_size, with_masks=False
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_detection)
    preds = predict_batches(model, loader, next(model.parameters()).device, cfg.amp)
    return preds, split, config


def coco_precision(ann_file: Path, records: list[dict], cat_ids: list[int]):
    """COCOeval (bbox) precision `[T, R, K, A, M]` with K in `cat_ids` order, IoU and recall thresholds."""
    from faster_coco_eval import COCO, COCOeval_faster

    from boxer.data.coco_json import load_coco_json

    gt = COCO(load_coco_json(ann_file))
    if not records:
        k = len(cat_ids)
        return -np.ones((10, 101, k, 4, 3)), np.linspace(0.5, 0.95, 10), np.linspace(0, 1, 101)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval_faster(gt, gt.loadRes(records), "bbox", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
    index = [list(ev.params.catIds).index(c) for c in cat_ids]
    return (
        np.asarray(ev.eval["precision"])[:, :, index],
        np.asarray(ev.params.iouThrs),
        np.asarray(ev.params.recThrs),
    )


def _truth(ann: dict, cat_ids: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """image id -> (xyxy Tensor[G, 4], contiguous labels LongTensor[G]); crowd boxes left out."""
    label = {c: i for i, c in enumerate(cat_ids)}
    out: dict[int, list] = {img["id"]: [] for img in ann["images"]}
    for a in ann["annotations"]:
        if not a.get("iscrowd", 0) and a["category_id"] in label:
            x, y, w, h = a["bbox"]
            out.setdefault(a["image_id"], []).append((x, y, x + w, y + h, label[a["category_id"]]))
    return {
        i: (torch.tensor([r[:4] for r in rows], dtype=torch.float64).reshape(-1, 4),
            torch.tensor([r[4] for r in rows], dtype=torch.long))
        for i, rows in out.items()
    }  # fmt: skip


def confusion_matrix(truth: dict, predictions: dict, num_classes: int, *, score: float, iou: float = 0.5):
    """[K + 1, K + 1] counts; see the module docstring."""
    cm = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for image_id, (gt_boxes, gt_labels) in truth.items():
        pred = predictions.get(
            image_id, {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}
        )
        keep = pred["scores"] >= score
        boxes, labels = pred["boxes"][keep].double(), pred["labels"][keep].long()
        order = pred["scores"][keep].argsort(descending=True)
        ious = (
            box_iou(boxes, gt_boxes)
            if len(boxes) and len(gt_boxes)
            else torch.zeros(len(boxes), len(gt_boxes))
        )
        taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
        for d in order.tolist():
            cand = ious[d].masked_fill(taken, -1.0)
            g = int(cand.argmax()) if len(cand) else -1
            if g >= 0 and cand[g] >= iou:
                taken[g] = True
                cm[int(gt_labels[g]), int(labels[d])] += 1
            else:
                cm[num_classes, int(labels[d])] += 1
        for g in torch.nonzero(~taken).flatten().tolist():
            cm[int(gt_labels[g]), num_classes] += 1
    return cm


def evaluate_run(run: Path, *, score: float = 0.3, device: str = "cpu") -> EvalResult:
    """Per-class AP, PR curves and the confusion matrix of `run` on its val split."""
    from boxer.data.coco_json import load_coco_json
    from boxer.evaluation import prediction_to_records
    from boxer.evaluation.coco_evaluator import per_class_ap

    preds, split, config = predict_val(run, device=device)
    cat_ids = list(config["cat_ids"])
    records = [r for i, p in preds.items() for r in prediction_to_records(i, p, cat_ids, with_masks=False)]
    precision, iou_thrs, rec_thrs = coco_precision(split.ann_file, records, cat_ids)
    ap, ap50 = per_class_ap(precision, iou_thrs)
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    truth = _truth(load_coco_json(split.ann_file), cat_ids)
    cm = confusion_matrix(truth, preds, len(cat_ids), score=score)
    return EvalResult(
        list(config["class_names"]), ap, ap50, rec_thrs, precision[t50, :, :, 0, -1], cm, records
    )
