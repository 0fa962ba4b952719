"""BoxeR-2D's export wrapper: inference and post-processing as one traceable module (docs/export.md).

`boxer export` (boxer/engine/export.py) traces `BoxeR2D.export_wrapper()` with `torch.export`:
inputs `images: float32[B, 3, H, W]` (normalised, one size per batch, no padding mask) and
`orig_sizes: int64[B, 2]` (h0, w0); outputs `boxes: float32[B, K, 4]` xyxy in original pixels
(clipped), `scores: float32[B, K]`, `labels: int64[B, K]`, and for mask models
`masks: bool[B, K, H, W]` at the size of `images`. Scores of mask models are rescored with the
pasted masks, as in `BoxeR2D.predict`; class-wise NMS (`nms_iou`) is left to the caller
(boxer/engine/onnx_predict.py), so the outputs keep a fixed size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert

from boxer.models.boxer2d.masks import paste_masks
from boxer.models.boxer2d.postprocess import select_topk

MASK_THRESHOLD = 0.5  # foreground: probability >= 0.5, the official threshold


def _to_pixels(boxes: Tensor, sizes: Tensor) -> Tensor:
    """boxes Tensor[B, K, 4] cxcywh normalised, sizes Tensor[B, 2] (h, w) -> xyxy pixels, unclipped."""
    h, w = sizes[:, 0, None].to(boxes.dtype), sizes[:, 1, None].to(boxes.dtype)  # B, 1
    scale = torch.stack((w, h, w, h), dim=-1)  # B, 1, 4
    return box_convert(boxes, "cxcywh", "xyxy") * scale


class BoxeRExport(nn.Module):
    """BoxeR-2D inference with its post-processing, on a batch of same-size unpadded images.

    Args:
        model: a `BoxeR2D` in eval mode.
    """

    kind = "boxer2d"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, orig_sizes: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        out = m._run(images, None, dense=False)
        logits, boxes = m.head(out.states[-1].t3, out.layer_windows(-1))  # B, Q, C / B, Q, 4
        scores, queries, labels = select_topk(logits.float(), m.num_select)  # B, K
        picked = boxes.float().gather(1, queries[..., None].expand(-1, -1, 4))  # B, K, 4 cxcywh
        xyxy = box_convert(picked, "cxcywh", "xyxy").clamp(0, 1)
        h0, w0 = orig_sizes[:, 0, None].float(), orig_sizes[:, 1, None].float()
        pixels = xyxy * torch.stack((w0, h0, w0, h0), dim=-1)  # B, K, 4
        if not m.with_masks:
            return pixels, scores, labels
        masks, scores = self._masks(out, logits, picked, queries, scores, images.shape[-2:])
        return pixels, scores, labels, masks

    def _masks(self, out, logits: Tensor, picked: Tensor, queries: Tensor, scores: Tensor, size):
        """Masks bool[B, K, H, W] at the input size and rescored scores, as `BoxeR2D._predict_masks`:
        the mask of a detection is its query's, in the channel of the query's argmax class, pasted
        into the unclipped box."""
        m = self.model
        B, K = queries.shape
        feats = m.transformer.mask_features(out, len(out.states) - 1, queries)  # B, K, g, g, d
        classes = logits.argmax(-1).gather(1, queries)  # B, K
        mlog = m.mask_head(feats.flatten(0, 1), classes.flatten())  # B*K, 2g, 2g
        H, W = size
        hw = torch.stack((torch.full_like(queries[:, 0], H), torch.full_like(queries[:, 0], W)), dim=-1)
        box = _to_pixels(picked, hw).flatten(0, 1)  # B*K, 4
        prob = paste_masks(mlog.float().sigmoid(), box, H, W)  # B*K, H, W
        fg = prob >= MASK_THRESHOLD
        mean = (prob * fg).flatten(1).sum(1) / fg.flatten(1).sum(1).clamp(min=1)
        return fg.view(B, K, H, W), scores * mean.view(B, K)
