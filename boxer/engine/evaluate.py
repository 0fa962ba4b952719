"""Evaluation: run a detector over a dataset and score it with the COCO protocol.

Every process predicts its shard (rank::world); `boxer.evaluation.CocoEvaluator` (bbox, plus segm
for mask models) gathers the results, so every process gets the same metrics, and the main process
prints the standard 12-line summary per IoU type.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from boxer.engine.distributed import DistInfo, unwrap
from boxer.engine.loader import eval_loader


def batch_to_device(batch: Any, device: torch.device) -> tuple[Tensor, Tensor, list[dict[str, Any]]]:
    """`DetectionBatch(images, pad_mask, targets)` (or a 3-tuple) moved to `device`."""
    images, pad_mask, targets = (
        (batch.images, batch.pad_mask, batch.targets) if hasattr(batch, "images") else batch
    )
    nb = device.type == "cuda"
    targets = [
        {k: v.to(device, non_blocking=nb) if isinstance(v, Tensor) else v for k, v in t.items()}
        for t in targets
    ]
    return images.to(device, non_blocking=nb), pad_mask.to(device, non_blocking=nb), targets


def autocast(device: torch.device, amp: str):
    """The autocast context of an `amp` mode: bf16/fp16 on request, `auto` = bf16 on GPU only."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if amp == "auto" and device.type == "cuda":
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _image_id(target: dict[str, Any]) -> int:
    value = target["image_id"]
    return int(value.item() if isinstance(value, Tensor) else value)


@torch.no_grad()
def predict_batches(model: nn.Module, loader, device: torch.device, amp: str = "auto") -> dict[int, dict]:
    """Image id -> prediction dict (tensors on CPU) for every image of `loader`."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    out: dict[int, dict] = {}
    for batch in loader:
        images, pad_mask, targets = batch_to_device(batch, device)
        with autocast(device, amp):
            preds = model.predict(images, pad_mask, targets)
        for target, pred in zip(targets, preds):
            out[_image_id(target)] = {
                k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in pred.items()
            }
    model.train(was_training)
    return out


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
    """
    from boxer.evaluation import CocoEvaluator

    loader = eval_loader(dataset, batch_size=batch_size, collate_fn=collate_fn, info=info, workers=workers)
    predictions = predict_batches(model, loader, info.device, amp)
    iou_types = ("bbox", "segm") if getattr(unwrap(model), "with_masks", False) else ("bbox",)
    evaluator = CocoEvaluator(dataset.ann_file, iou_types=iou_types, cat_ids=dataset.cat_ids)
    evaluator.update(predictions)
    metrics = evaluator.evaluate()  # gathers every process's results; prints on the main one
    if results_path and info.is_main:
        evaluator.write_results(results_path)
    return metrics
