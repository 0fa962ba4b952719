"""Post-processing of BoxeR-2D (BoxeR, Nguyen et al., CVPR 2022; docs/boxer2d.md, "Files"): top-k over
queries x classes, boxes to original pixels.

No NMS by default (the paper's): one query may appear with several classes. `nms_iou` adds a
class-wise NMS over the selected pairs (off in the paper presets): an under-trained one-to-one head
still places several queries on one object, and suppressing them lifted box AP50 of the CPU demo's
model from 0.345 to 0.442 on the tuning set (docs/training.md, "The demo"). Boxes are cxcywh normalised to the
transformed, unpadded image; since the evaluation transform only resizes, xyxy in original pixels
is the normalised xyxy times (w0, h0, w0, h0) with (h0, w0) = `target["orig_size"]`.

Deviation: boxes are clipped to the image (the official code leaves them unclipped). Mask models
paste their masks with the unclipped boxes first, as the official code does (`BoxeR2D.predict`
asks for `clip=False`, then clips with `clip_boxes`): clipping first would squeeze the mask.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_convert


def select_topk(logits: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top-k (query, class) pairs by sigmoid score.

    Args:
        logits: Tensor[B, Q, C].
        k: pairs kept per image (at most Q * C).

    Returns:
        scores Tensor[B, K], query indices LongTensor[B, K], labels LongTensor[B, K], best first.
    """
    B, Q, C = logits.shape
    scores, flat = torch.topk(logits.sigmoid().reshape(B, Q * C), min(k, Q * C), dim=1)
    return scores, flat // C, flat % C


def boxes_to_original(boxes: Tensor, orig_size: Tensor, *, clip: bool = True) -> Tensor:
    """boxes: Tensor[K, 4] cxcywh normalised; orig_size (h0, w0) -> Tensor[K, 4] xyxy original pixels,
    clipped to the image unless `clip=False`."""
    h0, w0 = (float(v) for v in orig_size)
    scale = torch.tensor([w0, h0, w0, h0], dtype=boxes.dtype, device=boxes.device)
    xyxy = box_convert(boxes, "cxcywh", "xyxy")
    return (xyxy.clamp(0, 1) if clip else xyxy) * scale


def clip_boxes(boxes_xyxy: Tensor, height: int, width: int) -> Tensor:
    """Tensor[K, 4] xyxy pixels clipped to a height x width image."""
    limit = torch.tensor([width, height, width, height], dtype=boxes_xyxy.dtype, device=boxes_xyxy.device)
    return torch.minimum(boxes_xyxy.clamp(min=0), limit)


def suppress_duplicates(boxes: Tensor, scores: Tensor, labels: Tensor, iou: float) -> Tensor:
    """Class-wise NMS: indices (best first) of the detections kept; boxes Tensor[K, 4] xyxy, scores and
    labels Tensor[K]. A detection is dropped when a higher-scored one of the same class overlaps it by
    IoU > `iou`."""
    return batched_nms(boxes.float(), scores.float(), labels, iou)


def postprocess(
    logits: Tensor,
    boxes: Tensor,
    targets: list[dict],
    *,
    num_select: int = 100,
    clip: bool = True,
    nms_iou: float | None = None,
) -> list[dict]:
    """Detections per image in original image pixels.

    Args:
        logits: Tensor[B, Q, C] class logits.
        boxes: Tensor[B, Q, 4] cxcywh normalised to the transformed, unpadded image.
        targets: per image, `orig_size` (h0, w0) of the file on disk.
        num_select: detections kept per image.
        clip: clip the boxes to the image (False: the mask paste needs the full boxes).
        nms_iou: class-wise NMS threshold over the `num_select` pairs (`suppress_duplicates`), or
            None for none.

    Returns:
        per image `boxes: Tensor[K, 4]` xyxy (original pixels), `scores: Tensor[K]`, `labels: Tensor[K]`
        and `queries: Tensor[K]` (the query each detection came from).
    """
    scores, queries, labels = select_topk(logits.float(), num_select)
    picked = boxes.float().gather(1, queries[..., None].expand(-1, -1, 4))  # B, K, 4
    dets = []
    for b, t in enumerate(targets):
        det = {
            "boxes": boxes_to_original(picked[b], t["orig_size"], clip=clip),
            "scores": scores[b],
            "labels": labels[b],
            "queries": queries[b],
        }
        if nms_iou is not None:  # on the clipped boxes, as the exported graph gives them
            clipped = det["boxes"] if clip else boxes_to_original(picked[b], t["orig_size"])
            keep = suppress_duplicates(clipped, det["scores"], det["labels"], nms_iou)
            det = {k: v[keep] for k, v in det.items()}
        dets.append(det)
    return dets
