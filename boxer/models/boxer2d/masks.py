"""Masks of BoxeR-2D (BoxeR, Nguyen et al., CVPR 2022; docs/boxer2d.md, "Masks"): the mask head, mask
targets, the dice loss, pasting and rescoring.

* Head ("mask_v1"): ConvTranspose 2x (14 -> 28) + ReLU, Conv 1x1 + ReLU, Conv 1x1 to C class-specific
  logits; each query keeps the channel of its argmax predicted class (in training too).
  Only that channel is computed: the last 1x1 conv is applied with the selected class's weights.
* Targets: the GT mask sampled at the 28x28 cell centres of the GT box, binarised at 0.5, through
  torchvision's `roi_align(aligned=True, sampling_ratio=1)`: one bilinear sample at each bin centre
  (tests check it equals cell-centre `grid_sample`, align_corners=False, after binarisation).
* Pasting: bilinear (align_corners=False, pixel centres) inside the predicted box, zero outside,
  written as two separable interpolation matrices (the same numbers as `grid_sample`), in chunks.
  The box is the unclipped prediction: a box crossing the border keeps its full extent and what lies
  outside the image is cut off (as the official code pastes); foreground is probability >= 0.5.
* Rescoring: score x mean mask probability over the predicted foreground; empty masks score 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align


class MaskHead(nn.Module):
    """28x28 class-specific mask logits from 14x14 mask features.

    Args:
        dim: feature width.
        num_classes: classes (output channels of the last conv).
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        self.conv = nn.Conv2d(dim, dim, kernel_size=1)
        self.predictor = nn.Conv2d(dim, num_classes, kernel_size=1)

    def forward(self, features: Tensor, classes: Tensor) -> Tensor:
        """Mask logits of each query's class.

        Args:
            features: Tensor[N, m, m, d] (rows = y).
            classes: LongTensor[N], the channel to keep per query.

        Returns:
            Tensor[N, 2m, 2m].
        """
        x = features.permute(0, 3, 1, 2)  # N, d, m, m
        x = F.relu(self.conv(F.relu(self.upsample(x))))  # N, d, 2m, 2m
        w = self.predictor.weight[classes, :, 0, 0]  # N, d
        return torch.einsum("ndhw,nd->nhw", x, w) + self.predictor.bias[classes, None, None]


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """1 - (2 sum(p t) + 1) / (sum p + sum t + 1) per row; logits, targets Tensor[K, P] -> Tensor[K]."""
    p = logits.sigmoid()
    return 1 - (2 * (p * targets).sum(-1) + 1) / (p.sum(-1) + targets.sum(-1) + 1)


def mask_targets(masks: Tensor, boxes_xyxy: Tensor, size: int = 28) -> Tensor:
    """GT masks sampled at the size x size cell centres of their boxes, binarised at 0.5.

    Args:
        masks: Tensor[N, H, W] (any dtype; > 0 is foreground), on the transformed unpadded image.
        boxes_xyxy: Tensor[N, 4] absolute pixels of the same image.
        size: output side.

    Returns:
        Tensor[N, size, size] float of 0/1.
    """
    if len(masks) == 0:
        return masks.new_zeros((0, size, size), dtype=torch.float32)
    rois = torch.cat(
        [
            torch.arange(len(masks), dtype=torch.float32, device=masks.device)[:, None],
            boxes_xyxy.float().to(masks.device),
        ],
        dim=1,
    )  # N, 5
    sampled = roi_align(
        (masks > 0).float()[:, None], rois, size, spatial_scale=1.0, sampling_ratio=1, aligned=True
    )
    return (sampled[:, 0] >= 0.5).float()


def _interp_matrix(lo: Tensor, hi: Tensor, n_out: int, n_in: int) -> Tensor:
    """Bilinear weights Tensor[K, n_out, n_in] mapping n_in cells spanning [lo, hi] onto pixel centres; zero
    for pixels whose centre lies outside [lo, hi]."""
    centres = torch.arange(n_out, dtype=lo.dtype, device=lo.device) + 0.5  # n_out
    span = (hi - lo).clamp(min=1e-6)[:, None]
    src = (centres[None] - lo[:, None]) / span * n_in - 0.5  # K, n_out, in cell-index units
    w = (1 - (src[..., None] - torch.arange(n_in, dtype=lo.dtype, device=lo.device)).abs()).clamp(min=0)
    inside = (centres[None] >= lo[:, None]) & (centres[None] <= hi[:, None])  # K, n_out
    return w * inside[..., None]


def paste_masks(probs: Tensor, boxes_xyxy: Tensor, height: int, width: int) -> Tensor:
    """Pastes mask probabilities into an image inside their boxes.

    Args:
        probs: Tensor[K, m, m] probabilities (rows = y).
        boxes_xyxy: Tensor[K, 4] in pixels of the target image.
        height, width: target image size.

    Returns:
        Tensor[K, height, width] float, zero outside each box.
    """
    boxes = boxes_xyxy.float()
    wy = _interp_matrix(boxes[:, 1], boxes[:, 3], height, probs.shape[1])  # K, H, m
    wx = _interp_matrix(boxes[:, 0], boxes[:, 2], width, probs.shape[2])  # K, W, m
    return wy @ probs.float() @ wx.transpose(1, 2)  # K, H, W


def paste_and_rescore(
    logits: Tensor,
    boxes_xyxy: Tensor,
    scores: Tensor,
    height: int,
    width: int,
    *,
    threshold: float = 0.5,
    chunk: int = 16,
) -> tuple[Tensor, Tensor]:
    """Binary masks at the original size and rescored scores (score x mean foreground probability).

    Args:
        logits: Tensor[K, m, m] mask logits.
        boxes_xyxy: Tensor[K, 4] original pixels, unclipped (may extend past the image).
        scores: Tensor[K] class scores.
        height, width: original image size.
        threshold: foreground = probability >= threshold (as the official code).
        chunk: masks pasted at once (bounds the float buffer to chunk x H x W).

    Returns:
        masks Tensor[K, H, W] bool and scores Tensor[K] (0 for an empty mask, never NaN).
    """
    masks = torch.zeros(len(logits), height, width, dtype=torch.bool, device=logits.device)
    new_scores = torch.zeros_like(scores, dtype=torch.float32)
    for s in range(0, len(logits), chunk):
        prob = paste_masks(logits[s : s + chunk].float().sigmoid(), boxes_xyxy[s : s + chunk], height, width)
        fg = prob >= threshold
        mean = (prob * fg).flatten(1).sum(1) / fg.flatten(1).sum(1).clamp(min=1)
        masks[s : s + chunk] = fg
        new_scores[s : s + chunk] = scores[s : s + chunk].float() * mean
    return masks, new_scores
