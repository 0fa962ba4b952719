"""The score threshold of `boxer predict --score auto`: the best F1 on the run's own training images.

Detections are matched to ground truth as in COCO's evaluation at one IoU: in decreasing score,
each detection takes the unmatched box of its class with the highest IoU >= 0.5 (a true positive);
an unmatched detection lying mostly inside a crowd box is ignored. Matching in score order does not
depend on the threshold, so F1 at every threshold comes from one sorted pass over all detections:
F1 = 2 TP / (detections kept + ground-truth boxes). The training split is used because it is the
run's own data (the val split stays for evaluation); its F1 is optimistic, its threshold sensible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from boxer.engine.config import TrainConfig
from boxer.engine.ground_truth import GroundTruth
from boxer.errors import BoxerError

MATCH_IOU = 0.5
AUTO_IMAGES = 64
MIN_F1 = 0.1  # below this the best-F1 threshold is noise (a model that finds almost nothing)


def match_detections(
    boxes: Tensor, scores: Tensor, labels: Tensor, gt: GroundTruth, *, iou: float = MATCH_IOU
) -> tuple[Tensor, Tensor]:
    """(true positive, ignored) flags `Tensor[K]` bool of one image's detections.

    Args:
        boxes: `Tensor[K, 4]` xyxy, original pixels.
        scores: `Tensor[K]`.
        labels: `Tensor[K]` contiguous classes.
        gt: the image's ground truth.
        iou: the match threshold.
    """
    from torchvision.ops import box_area, box_iou

    tp = torch.zeros(len(scores), dtype=torch.bool)
    ious = box_iou(boxes.float(), gt.boxes.float())  # K, N
    ious = torch.where(labels[:, None] == gt.labels[None, :], ious, -1.0)
    taken = torch.zeros(len(gt.boxes), dtype=torch.bool)
    for i in scores.argsort(descending=True).tolist():
        row = ious[i].masked_fill(taken, -1.0)
        if len(row) and row.max() >= iou:
            taken[row.argmax()] = True
            tp[i] = True
    ignored = torch.zeros_like(tp)
    if len(gt.crowd_boxes) and len(boxes):  # intersection over the detection's area, as COCO
        lt = torch.maximum(boxes[:, None, :2], gt.crowd_boxes[None, :, :2])
        rb = torch.minimum(boxes[:, None, 2:], gt.crowd_boxes[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)  # K, M
        ioa = inter / box_area(boxes.float()).clamp(min=1e-9)[:, None]
        ignored = ~tp & (ioa.max(dim=1).values >= iou)
    return tp, ignored


@dataclass
class ScoreChoice:
    """A chosen threshold and how it scores (precision, recall and F1 of the detections >= it)."""

    threshold: float
    f1: float
    precision: float
    recall: float
    note: str = ""


def best_f1_threshold(
    scores: Tensor, true_positive: Tensor, num_gt: int, *, min_f1: float = MIN_F1
) -> ScoreChoice:
    """The score threshold (keep >= it) with the highest F1; among equal F1, the highest threshold.

    When even the best F1 is below `min_f1` (a model that finds almost nothing, where the argmax is
    noise and tends to keep everything), the threshold that keeps as many detections as there are
    ground-truth boxes instead, so that pictures show the model's best guesses; `note` says so.

    Args:
        scores: `Tensor[D]` all detections of the images.
        true_positive: `Tensor[D]` bool.
        num_gt: ground-truth boxes of the images.
        min_f1: the lowest best F1 that is trusted.
    """
    if num_gt == 0 or len(scores) == 0:
        raise BoxerError(
            f"no {'ground-truth boxes' if num_gt == 0 else 'detections'} to choose a threshold on"
        )
    order = scores.argsort(descending=True, stable=True)
    s, tp = scores[order].double(), true_positive[order].double().cumsum(0)  # D
    kept = torch.arange(1, len(s) + 1, dtype=torch.float64)
    f1 = 2 * tp / (kept + num_gt)
    cut = torch.ones_like(s, dtype=torch.bool)
    cut[:-1] = s[:-1] > s[1:]  # a threshold keeps all detections of equal score or none
    f1 = torch.where(cut, f1, torch.full_like(f1, -1.0))
    best = int(f1.argmax())
    note = ""
    if f1[best] < min_f1:
        note = (
            f"the best F1 is only {float(f1[best]):.3f}: the model finds almost nothing on these images "
            "(train longer?); this threshold keeps as many detections as there are boxes"
        )
        best = min(num_gt, len(s)) - 1
        best = int(torch.nonzero(s >= s[best]).max())  # with all detections of that score
    p, r = float(tp[best] / kept[best]), float(tp[best] / num_gt)
    return ScoreChoice(float(s[best]), float(2 * tp[best] / (kept[best] + num_gt)), p, r, note)


def _train_split(cfg: TrainConfig):
    """The run's training split from its saved config (`data`, or `train_images` + `train_ann`)."""
    from boxer.engine.data import resolve_split

    if not cfg.data and not (cfg.train_images and cfg.train_ann):
        raise BoxerError("config.json names no training data (data, or train_images and train_ann)")
    try:
        return resolve_split(cfg.data, "train", images=cfg.train_images, ann_file=cfg.train_ann)
    except BoxerError as err:
        raise BoxerError(f"its training data is missing: {str(err).removeprefix('--data: ')}") from None


def sample_indices(total: int, count: int) -> list[int]:
    """`count` indices spread evenly over `range(total)` (all of them when count >= total)."""
    count = min(count, total)
    return [i * total // count for i in range(count)]


def auto_score_threshold(
    model: nn.Module,
    cfg: TrainConfig,
    cat_ids: Sequence[int],
    *,
    images: int = AUTO_IMAGES,
    batch_size: int = 1,
) -> tuple[ScoreChoice, int]:
    """The best-F1 threshold (IoU >= 0.5, class-aware) on up to `images` training images of the run.

    Args:
        model: the detector, in eval mode on its device.
        cfg: the run's saved config (data paths, eval sizes, amp).
        cat_ids: the checkpoint's contiguous label -> category id.
        images: how many training images (spread evenly over the split).
        batch_size: images per forward pass.

    Returns:
        the choice and the number of images used.
    """
    from boxer.data import collate_detection
    from boxer.engine.evaluate import predict_batches
    from boxer.engine.ground_truth import load_ground_truth
    from boxer.engine.predict import ImageFiles

    if images < 1:
        raise BoxerError(f"--score-images: expected at least 1, got {images}")
    split = _train_split(cfg)
    truth = load_ground_truth(split.ann_file, cat_ids)
    picked = [truth[i] for i in sample_indices(len(truth), images)]
    if not picked:
        raise BoxerError(f"{split.ann_file}: no images")
    paths = [Path(split.images) / gt.file_name for gt in picked]
    dataset = ImageFiles(
        paths, [gt.image_id for gt in picked], image_size=cfg.image_size, max_size=cfg.max_size
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_detection)
    by_id = {gt.image_id: gt for gt in picked}
    device = next(model.parameters()).device
    scores, hits = [], []
    for batch in loader:  # one batch at a time: mask models' full-size masks are dropped at once
        for image_id, pred in predict_batches(model, [batch], device, cfg.amp).items():
            tp, ignored = match_detections(pred["boxes"], pred["scores"], pred["labels"], by_id[image_id])
            scores.append(pred["scores"][~ignored])
            hits.append(tp[~ignored])
    num_gt = sum(len(gt.boxes) for gt in picked)
    return best_f1_threshold(torch.cat(scores), torch.cat(hits), num_gt), len(picked)
