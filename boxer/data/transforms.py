"""Detection transforms on torchvision.transforms.v2 + tv_tensors: the DETR recipe, at any base size.

Paper: DETR (Carion et al., 2020), §A.4, as used by BoxeR (docs/data.md, "COCO dataset, transforms,
batching"). Train: horizontal flip (p = 0.5); then, with p = 0.5 each, a multi-scale short-side resize to
{480, 512, ..., 800} (long side <= 1333), or a short-side resize to {400, 500, 600}, a random crop with
h, w in [384, 600] and the same multi-scale resize. Eval: short side 800, long side <= 1333. For a base
size other than 800 every length is scaled by base_size / 800 (e.g. FashionScenes at 256).

Deviation from DETR: after a crop, a box that touches the crop border is shrunk to the bounds of
what remains of its mask (when masks are present), so cut boxes stay tight; DETR only clamps.
Normalisation (ImageNet mean/std) is applied by the dataset after these transforms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = [
    "RandomShortSideResize",
    "RandomSizeCrop",
    "short_side_size",
    "TightenCutBoxes",
    "build_transforms",
    "masks_to_boxes_xyxy",
    "resize_masks",
    "scaled_sizes",
]


def masks_to_boxes_xyxy(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of masks `[N, H, W]`: `Tensor[N, 4]` xyxy in pixel-edge coordinates (x2 = last col + 1).

    Empty masks give all-zero boxes.
    """
    n = masks.shape[0]
    if n == 0:
        return torch.zeros(0, 4)
    m = masks.bool()
    cols, rows = m.any(dim=1), m.any(dim=2)  # N, W and N, H
    w, h = cols.shape[1], rows.shape[1]
    ar_w = torch.arange(w, device=m.device)
    ar_h = torch.arange(h, device=m.device)
    x1 = torch.where(cols, ar_w, w).amin(dim=1)
    x2 = torch.where(cols, ar_w, -1).amax(dim=1) + 1
    y1 = torch.where(rows, ar_h, h).amin(dim=1)
    y2 = torch.where(rows, ar_h, -1).amax(dim=1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()  # N, 4
    return torch.where(cols.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


def short_side_size(h: int, w: int, size: int, max_size: int | None) -> tuple[int, int]:
    """DETR's output size: short side `size`, reduced so that the long side stays <= `max_size`.

    Unlike DETR's helper, the long side is clamped to `max_size` (DETR can overshoot by rounding).
    """
    if max_size is not None and max(h, w) / min(h, w) * size > max_size:
        size = int(round(max_size * min(h, w) / max(h, w)))
    if min(h, w) == size:
        return h, w
    long_side = int(size * max(h, w) / min(h, w))
    if max_size is not None:
        long_side = min(long_side, max_size)
    return (size, long_side) if h <= w else (long_side, size)


def resize_masks(masks: torch.Tensor, size: list[int]) -> torch.Tensor:
    """Resizes masks `[N, H, W]` to `size` (h, w) by pixel-centre nearest sampling (NEAREST_EXACT).

    torchvision's default for masks, NEAREST, samples at pixel corners and shifts masks by up to half
    a source pixel against the boxes; the shift adds up over resize -> crop -> resize.
    """
    return F.resize_mask(masks, size, interpolation=InterpolationMode.NEAREST_EXACT)


class RandomShortSideResize(v2.Transform):
    """Resizes the short side to a size drawn uniformly from `sizes`, the long side capped at `max_size`.

    Images are resized bilinearly with antialiasing, masks by `resize_masks`. Downscaling can drop
    parts of a mask thinner than a pixel of the output (e.g. slivers left by occlusion), so a box may
    then exceed its mask's bounds by up to about one source pixel.

    Args:
        sizes: candidate short-side lengths in pixels.
        max_size: longest side after resizing; None for no cap.
    """

    def __init__(self, sizes: list[int], max_size: int | None = None) -> None:
        super().__init__()
        self.sizes, self.max_size = [int(s) for s in sizes], max_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        size = self.sizes[int(torch.randint(len(self.sizes), ()))]
        return {"size": list(short_side_size(h, w, size, self.max_size))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return tv_tensors.wrap(resize_masks(inpt.as_subclass(torch.Tensor), params["size"]), like=inpt)
        return self._call_kernel(F.resize, inpt, params["size"], antialias=True)


class RandomSizeCrop(v2.Transform):
    """Crops a random window with h, w drawn uniformly from [min_size, min(max_size, image side)].

    Args:
        min_size: smallest crop side in pixels (the image side when the image is smaller).
        max_size: largest crop side in pixels.
    """

    def __init__(self, min_size: int, max_size: int) -> None:
        super().__init__()
        self.min_size, self.max_size = int(min_size), int(max_size)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        th = int(torch.randint(min(self.min_size, h), min(h, self.max_size) + 1, ()))
        tw = int(torch.randint(min(self.min_size, w), min(w, self.max_size) + 1, ()))
        top = int(torch.randint(0, h - th + 1, ()))
        left = int(torch.randint(0, w - tw + 1, ()))
        return {"top": top, "left": left, "height": th, "width": tw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.crop, inpt, **params)


class TightenCutBoxes(v2.Transform):
    """Shrinks boxes that touch the image border to their mask's bounds (no-op without masks).

    Used right after a crop: a clamped box of a cut object can be much larger than the part of the
    object left in the window.
    """

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = tree_flatten(sample)
        idx_b = [i for i, x in enumerate(flat) if isinstance(x, tv_tensors.BoundingBoxes)]
        idx_m = [i for i, x in enumerate(flat) if isinstance(x, tv_tensors.Mask)]
        if len(idx_b) != 1 or len(idx_m) != 1:
            return sample
        boxes, masks = flat[idx_b[0]], flat[idx_m[0]]
        if boxes.format != tv_tensors.BoundingBoxFormat.XYXY or masks.ndim != 3 or len(masks) != len(boxes):
            return sample
        h, w = boxes.canvas_size
        b = boxes.as_subclass(torch.Tensor)
        edge = (b[:, 0] <= 0.5) | (b[:, 1] <= 0.5) | (b[:, 2] >= w - 0.5) | (b[:, 3] >= h - 0.5)
        tight = masks_to_boxes_xyxy(masks).to(b.dtype)  # N, 4
        inter = torch.cat(
            [torch.maximum(b[:, :2], tight[:, :2]), torch.minimum(b[:, 2:], tight[:, 2:])], dim=1
        )
        inter = torch.where(
            (tight[:, 2:] > tight[:, :2]).all(dim=1, keepdim=True), inter, torch.zeros_like(b)
        )
        flat[idx_b[0]] = tv_tensors.wrap(torch.where(edge[:, None], inter, b), like=boxes)
        return tree_unflatten(flat, spec)


def _labels_and_crowd(inputs: Any) -> tuple[torch.Tensor, ...]:
    """For SanitizeBoundingBoxes: the per-instance tensors of the target dict to filter with the boxes."""
    target = next(
        x for x in (inputs if isinstance(inputs, (tuple, list)) else [inputs]) if isinstance(x, dict)
    )
    return tuple(target[k] for k in ("labels", "iscrowd") if k in target)


def scaled_sizes(base_size: int) -> dict[str, list[int] | int]:
    """Every length of the recipe at `base_size` (DETR's lengths are for 800)."""
    r = base_size / 800.0
    return {
        "scales": sorted({round(s * r) for s in range(480, 801, 32)}),
        "crop_resize": [round(s * r) for s in (400, 500, 600)],
        "crop_min": round(384 * r),
        "crop_max": round(600 * r),
    }


def build_transforms(train: bool, *, base_size: int = 800, max_size: int | None = None) -> v2.Transform:
    """The train or eval transforms for (image, target) pairs, before normalisation.

    The target is a dict holding `boxes` (tv_tensors.BoundingBoxes, XYXY), `labels`, optionally
    `iscrowd` and `masks` (tv_tensors.Mask); degenerate boxes are dropped with their labels/masks.

    Args:
        train: the augmentation recipe (True) or the fixed eval resize (False).
        base_size: the eval short side; DETR's 800. Every train length scales with it.
        max_size: longest side after resizing; default 1333 * base_size / 800.
    """
    if base_size < 16:
        raise ValueError(f"base_size must be at least 16, got {base_size}")
    max_size = max_size if max_size is not None else round(1333 * base_size / 800)
    sanitize = v2.SanitizeBoundingBoxes(labels_getter=_labels_and_crowd)
    if not train:
        return v2.Compose([RandomShortSideResize([base_size], max_size=max_size), sanitize])
    s = scaled_sizes(base_size)
    multi_scale = RandomShortSideResize(s["scales"], max_size=max_size)
    crop_branch = v2.Compose(
        [
            RandomShortSideResize(s["crop_resize"]),
            RandomSizeCrop(s["crop_min"], s["crop_max"]),
            TightenCutBoxes(),
            RandomShortSideResize(s["scales"], max_size=max_size),
        ]
    )
    return v2.Compose([v2.RandomHorizontalFlip(p=0.5), v2.RandomChoice([multi_scale, crop_branch]), sanitize])
