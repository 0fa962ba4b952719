"""Batching for detection: pad images bottom-right to the batch maximum, with a padding mask.

Follows docs/CONTRACTS.md: `pad_mask` is True on padding (DETR's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["DetectionBatch", "collate_detection"]


class DetectionBatch(NamedTuple):
    """A padded batch.

    Attributes:
        images: `Tensor[B, 3, Hmax, Wmax]` float, zero-padded bottom-right.
        pad_mask: `Tensor[B, Hmax, Wmax]` bool, True on padding.
        targets: one target dict per image (see `CocoDetection`).
    """

    images: Tensor
    pad_mask: Tensor
    targets: list[dict[str, Any]]

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> DetectionBatch:
        """The batch on `device`; tensors inside the targets move too."""

        def move(v: Any) -> Any:
            return v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v

        return DetectionBatch(
            self.images.to(device, non_blocking=non_blocking),
            self.pad_mask.to(device, non_blocking=non_blocking),
            [{k: move(v) for k, v in t.items()} for t in self.targets],
        )


def collate_detection(
    samples: Sequence[tuple[Tensor, dict[str, Any]]], *, size_divisibility: int = 1
) -> DetectionBatch:
    """Pads `(image Tensor[3, H, W], target)` samples into one `DetectionBatch`.

    Args:
        samples: what `CocoDetection.__getitem__` returns, one per image.
        size_divisibility: round the padded height and width up to a multiple of this.
    """
    if not samples:
        raise ValueError("collate_detection needs at least one sample")
    images = [s[0] for s in samples]
    h = max(int(im.shape[-2]) for im in images)
    w = max(int(im.shape[-1]) for im in images)
    if size_divisibility > 1:
        h = -(-h // size_divisibility) * size_divisibility
        w = -(-w // size_divisibility) * size_divisibility
    batch = images[0].new_zeros((len(images), images[0].shape[0], h, w))  # B, 3, Hmax, Wmax
    pad_mask = torch.ones((len(images), h, w), dtype=torch.bool)  # B, Hmax, Wmax
    for i, im in enumerate(images):
        batch[i, :, : im.shape[-2], : im.shape[-1]].copy_(im)
        pad_mask[i, : im.shape[-2], : im.shape[-1]] = False
    return DetectionBatch(batch, pad_mask, [s[1] for s in samples])
