"""Evaluation: run a detector over a dataset and score it with the COCO protocol.

Every process predicts its shard (rank::world); `boxer.evaluation.CocoEvaluator` (bbox, plus segm
for mask models) gathers the results, so every process gets the same metrics, and the main process
prints the standard 12-line summary per IoU type. A split without ground truth is refused (COCO
AP is undefined there, -1); an image that fails to load stops evaluation with one line naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from boxer.data.collate import DetectionBatch
from boxer.engine.distributed import DistInfo, unwrap
from boxer.engine.loader import check_batch, eval_loader
from boxer.engine.logging import Progress
from boxer.engine.precision import autocast  # the trainer and benchmarks/convergence.py import it from here
from boxer.errors import BoxerError


def batch_to_device(batch: Any, device: torch.device) -> tuple[Tensor, Tensor, list[dict[str, Any]]]:
    """`DetectionBatch(images, pad_mask, targets)` (or a 3-tuple) moved to `device` by
    `DetectionBatch.to` (non-blocking on CUDA), as `(images, pad_mask, targets)`."""
    if not isinstance(batch, DetectionBatch):
        batch = DetectionBatch(*batch)
    moved = batch.to(device, non_blocking=device.type == "cuda")
    return moved.images, moved.pad_mask, moved.targets


def _image_id(target: dict[str, Any]) -> int:
    value = target["image_id"]
    return int(value.item() if isinstance(value, Tensor) else value)


@torch.no_grad()
def predict_batches(
    model: nn.Module, loader, device: torch.device, amp: str = "auto", *, progress: bool = False
) -> dict[int, dict]:
    """Image id -> prediction dict (tensors on CPU) for every image of `loader`.

    Args:
        progress: show a progress bar (batches) on stderr.
    """
    model = unwrap(model)
    was_training = model.training
    model.eval()
    out: dict[int, dict] = {}
    bar = Progress(len(loader), desc="eval", unit="batch") if progress else None
    try:
        for batch in loader:
            out.update(_predict_batch(model, check_batch(batch), device, amp))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return out


def _predict_batch(model: nn.Module, batch: Any, device: torch.device, amp: str) -> dict[int, dict]:
    images, pad_mask, targets = batch_to_device(batch, device)
    with autocast(device, amp):
        preds = model.predict(images, pad_mask, targets)
    return {
        _image_id(t): {k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in p.items()}
        for t, p in zip(targets, preds)
    }


def evaluate_detector(
    model: nn.Module,
    dataset,
    *,
    info: DistInfo,
    collate_fn: Callable,
    batch_size: int = 1,
    workers: int = 0,
    amp: str = "auto",
    results_path: str | None = None,
    progress: bool = True,
    cat_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO metrics of `model` on `dataset` (a CocoDetection), printed once, returned on every process.

    Args:
        model: a detector implementing `predict` (docs/CONTRACTS.md).
        dataset: has `ann_file` and `cat_ids`.
        info: rank, world size and device.
        collate_fn: batch builder.
        batch_size: images per forward.
        workers: loader worker processes.
        amp: precision mode.
        results_path: also write the COCO results JSON there (main process).
        progress: show a progress bar (main process).
        cat_ids: label -> category id when the model's classes are not the dataset's (default
            `dataset.cat_ids`); only these categories are evaluated.
    """
    from boxer.evaluation import CocoEvaluator

    require_ground_truth(dataset)
    loader = eval_loader(dataset, batch_size=batch_size, collate_fn=collate_fn, info=info, workers=workers)
    predictions = predict_batches(model, loader, info.device, amp, progress=progress and info.is_main)
    iou_types = ("bbox", "segm") if getattr(unwrap(model), "with_masks", False) else ("bbox",)
    evaluator = CocoEvaluator(dataset.ann_file, iou_types=iou_types, cat_ids=cat_ids or dataset.cat_ids)
    evaluator.update(predictions)
    metrics = evaluator.evaluate()  # gathers every process's results; prints on the main one
    if results_path and info.is_main:
        evaluator.write_results(results_path)
    return metrics


def require_ground_truth(dataset) -> None:
    """Refuses a split without ground-truth boxes: its COCO AP would be -1, which means nothing."""
    from boxer.engine.data import count_boxes

    if hasattr(dataset, "_targets") and count_boxes(dataset) == 0:
        raise BoxerError(
            f"{dataset.ann_file}: no ground-truth boxes in {len(dataset)} images; COCO AP is undefined "
            "without them (use `boxer predict` to look at predictions)"
        )
