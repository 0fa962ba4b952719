"""Box-attention geometry in image pixels.

The model works in coordinates normalised to the valid (unpadded) transformed image; predictions
are mapped to the file's pixels by a plain scale (`boxer/models/boxer2d/postprocess.py`), and so are
windows and sampling points here. Pixel coordinates are continuous: pixel (i, j) covers
[j, j + 1) x [i, i + 1), so a normalised x lands at x * w0.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import box_convert


def scale_xy(points: Tensor, width: float, height: float) -> Tensor:
    """Tensor[..., 2] of normalised (x, y) -> pixels of a width x height image."""
    return points * points.new_tensor([width, height])


def cxcywh_to_xyxy_pixels(boxes: Tensor, width: float, height: float) -> Tensor:
    """Tensor[..., 4] normalised (cx, cy, w, h) -> Tensor[..., 4] (x0, y0, x1, y1) in pixels
    (torchvision's `box_convert`, then the scale)."""
    return box_convert(boxes, "cxcywh", "xyxy") * boxes.new_tensor([width, height, width, height])


def token_at_pixel(
    x: float, y: float, *, width: float, height: float, shapes: list[tuple[int, int]], ratios: Tensor
) -> list[int]:
    """Flattened index (level-major, row-major) of the token under pixel (x, y) on every level.

    Args:
        x, y: a point of the original image, in pixels.
        width, height: the original image size.
        shapes: (H_l, W_l) of each level's padded map.
        ratios: Tensor[L, 2] of (valid_w / W_l, valid_h / H_l).
    """
    index, start = [], 0
    for (h_l, w_l), (rw, rh) in zip(shapes, ratios.tolist()):
        col = min(int(x / width * rw * w_l), w_l - 1)
        row = min(int(y / height * rh * h_l), h_l - 1)
        index.append(start + max(row, 0) * w_l + max(col, 0))
        start += h_l * w_l
    return index
