"""Legible pictures of detections: coloured boxes, labels that never overlap, GT | prediction pairs.

Drawing only (the results JSON is written elsewhere, complete):

- one fixed colour per class (a 20-colour palette), box outlines ~3 px at the display size;
- labels "name 0.87" in bold on a filled box of the class colour, black or white text by contrast,
  placed above the box, else inside or below it, else shifted until they overlap no earlier label
  (a label with no free place at all is left out, and the title says how many);
- near-duplicate boxes (class-agnostic IoU >= 0.7 with a higher-scoring drawn box) are not drawn,
  so one item never gets a stack of boxes and labels;
- small images are enlarged before drawing (long side at least `display`), so text stays readable;
- a panel has a title strip above the image and an optional note banner (e.g. why nothing is drawn).

Boxes are `Tensor[K, 4]` xyxy in original image pixels (docs/CONTRACTS.md), labels contiguous.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

# Distinct, saturated colours (Kelly / Tableau-like); class c uses PALETTE[c % 20].
PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (170, 110, 40), (128, 0, 0), (170, 255, 195), (128, 128, 0),
    (255, 215, 180), (0, 0, 128), (128, 128, 128), (100, 100, 255), (0, 90, 50),
]  # fmt: skip
DUPLICATE_IOU = 0.7
BACKGROUND = (255, 255, 255)


def class_color(label: int) -> tuple[int, int, int]:
    """The fixed colour of contiguous class `label`."""
    return PALETTE[label % len(PALETTE)]


def text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones (relative luminance)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold (shipped with matplotlib) at `size` px, else PIL's scalable default."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans:bold", fallback_to_default=True), size)
    except (ImportError, OSError, ValueError):
        return ImageFont.load_default(size)


def drawn_subset(
    boxes: Tensor, scores: Tensor, *, iou: float = DUPLICATE_IOU, top: int | None = None
) -> Tensor:
    """Indices of the detections to draw, best first: class-agnostic NMS at `iou`, then the `top` best.

    Args:
        boxes: `Tensor[K, 4]` xyxy.
        scores: `Tensor[K]`.
        iou: a box overlapping a better drawn box by this IoU or more is a near-duplicate.
        top: keep at most this many (None = all).
    """
    from torchvision.ops import nms

    if len(scores) == 0:
        return torch.zeros(0, dtype=torch.int64)
    keep = nms(boxes.float(), scores.float(), iou)  # sorted by decreasing score
    return keep[:top] if top is not None else keep


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    boxes: Sequence[Sequence[float]], sizes: Sequence[tuple[int, int]], canvas: tuple[int, int]
) -> list[tuple[int, int] | None]:
    """Top-left corners of label rectangles, so that no two labels overlap (earlier boxes first).

    Tries above the box's top-left corner, inside it, below it, and the right-hand versions; when
    all of them hit an earlier label, slides the label down (then up) in steps of its height; None
    when no place is free.

    Args:
        boxes: xyxy boxes in canvas pixels, most important first.
        sizes: (width, height) of each label.
        canvas: (width, height) of the picture.
    """
    cw, ch = canvas
    placed: list[tuple[float, ...]] = []
    corners = []
    for (x0, y0, x1, y1), (w, h) in zip(boxes, sizes):

        def clamp(x: float, y: float, w: int = w, h: int = h) -> tuple[int, int]:
            return int(min(max(x, 0), max(cw - w, 0))), int(min(max(y, 0), max(ch - h, 0)))

        tries = [(x0, y0 - h), (x0, y0), (x0, y1), (x0, y1 - h), (x1 - w, y0 - h), (x1 - w, y1)]
        start = clamp(*tries[0])
        slides = [(start[0], start[1] + k * (h + 1)) for k in range(1, ch // (h + 1) + 1)]
        slides += [(start[0], start[1] - k * (h + 1)) for k in range(1, ch // (h + 1) + 1)]
        options = [clamp(*xy) for xy in tries] + [xy for xy in slides if 0 <= xy[1] <= ch - h]
        free = (xy for xy in options if not any(_overlaps((*xy, xy[0] + w, xy[1] + h), r) for r in placed))
        corner = next(free, None)
        if corner is not None:
            placed.append((*corner, corner[0] + w, corner[1] + h))
        corners.append(corner)
    return corners


@dataclass
class Panel:
    """What one picture shows.

    Args:
        boxes: `Tensor[K, 4]` xyxy, original image pixels.
        labels: `Tensor[K]` contiguous classes.
        scores: `Tensor[K]`, or None for ground truth (labels without scores).
        masks: `Tensor[K, H, W]` bool at the original size, or None.
        title: the strip above the image.
        note: a banner drawn over the top of the image (e.g. why nothing is shown), or "".
    """

    boxes: Tensor
    labels: Tensor
    scores: Tensor | None = None
    masks: Tensor | None = None
    title: str = ""
    note: str = ""


def _scaled(image: Tensor, display: int) -> tuple[Image.Image, float]:
    """The uint8 `[3, H, W]` image as PIL, enlarged (never shrunk) to a long side of `display`."""
    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    scale = max(1.0, display / max(pil.size))
    if scale > 1:
        pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.BICUBIC)
    return pil, scale


def _draw_masks(pil: Image.Image, masks: Tensor, labels: Tensor, alpha: float = 0.45) -> Image.Image:
    for mask, label in zip(masks, labels.tolist()):
        m = Image.fromarray(mask.to(torch.uint8).mul(round(255 * alpha)).numpy()).resize(pil.size)
        pil = Image.composite(Image.new("RGB", pil.size, class_color(label)), pil, m)
    return pil


def _draw_note(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> None:
    """A dark banner over the top of the image with `text` in yellow (wrapped)."""
    f = font(size)
    pad = max(3, size // 3)
    lines = wrap(text, f, width - 2 * pad)
    step = round(size * 1.25)
    draw.rectangle((0, 0, width, len(lines) * step + 2 * pad), fill=(30, 30, 30))
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * step), line, font=f, fill=(255, 230, 80))


def render_panel(
    image: Tensor, panel: Panel, class_names: Sequence[str], *, display: int = 512
) -> Image.Image:
    """The picture of one panel: title strip, image (enlarged to `display`), masks, boxes, labels.

    Args:
        image: uint8 `[3, H, W]`.
        panel: what to draw; its detections are drawn in the given order (best first).
        class_names: contiguous class -> name.
        display: enlarge the image to at least this long side.
    """
    pil, scale = _scaled(image, display)
    if panel.masks is not None and len(panel.masks):
        pil = _draw_masks(pil, panel.masks, panel.labels)
    draw = ImageDraw.Draw(pil)
    size = max(12, round(max(pil.size) / 32))
    width = max(2, round(max(pil.size) / 128))
    f, pad = font(size), max(2, size // 5)
    boxes = (panel.boxes.float() * scale).tolist()
    labels = panel.labels.tolist()
    scores = panel.scores.tolist() if panel.scores is not None else [None] * len(labels)
    texts = [class_names[c] + ("" if s is None else f" {s:.2f}") for c, s in zip(labels, scores)]
    sizes = []
    for text in texts:
        l, t, r, b = draw.textbbox((0, 0), text, font=f)
        sizes.append((r - l + 2 * pad, b - t + 2 * pad))
    for box, c in zip(boxes, labels):
        draw.rectangle(box, outline=class_color(c), width=width)
    corners = place_labels(boxes, sizes, pil.size)
    for corner, (w, h), text, c in zip(corners, sizes, texts, labels):
        if corner is None:
            continue
        x, y = corner
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=class_color(c), outline=(0, 0, 0))
        l, t, _, _ = draw.textbbox((0, 0), text, font=f)
        draw.text((x + pad - l, y + pad - t), text, font=f, fill=text_color(class_color(c)))
    if panel.note:
        _draw_note(draw, panel.note, pil.width, size)
    left_out = sum(c is None for c in corners)
    title = panel.title + (f" ({left_out} label{'s' * (left_out > 1)} left out: no room)" if left_out else "")
    return _with_title(pil, title, size)


def wrap(text: str, f, width: int) -> list[str]:
    """`text` in lines no wider than `width` pixels (split at spaces; a long word stays whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and f.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _with_title(pil: Image.Image, title: str, size: int) -> Image.Image:
    """`pil` under a white strip holding `title` (wrapped to the picture's width)."""
    if not title:
        return pil
    f = font(size)
    pad = max(4, size // 2)
    lines = wrap(title, f, pil.width - 2 * pad)
    step = round(size * 1.25)
    top = len(lines) * step + 2 * pad - (step - size)
    out = Image.new("RGB", (pil.width, pil.height + top), BACKGROUND)
    out.paste(pil, (0, top))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * step), line, font=f, fill=(0, 0, 0))
    return out


def hstack(images: Sequence[Image.Image], gap: int = 12) -> Image.Image:
    """Pictures side by side, top-aligned, on white."""
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (width, max(i.height for i in images)), BACKGROUND)
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def grid(cells: Sequence[Image.Image], *, columns: int, gap: int = 16, footer: str = "") -> Image.Image:
    """Pictures in rows of `columns` (cell size = the largest), with an optional footer line."""
    cw, ch = max(c.width for c in cells), max(c.height for c in cells)
    rows = math.ceil(len(cells) / columns)
    cols = min(columns, len(cells))
    size = max(12, cw // 40)
    foot = size * 2 if footer else 0
    out = Image.new("RGB", (cols * cw + (cols + 1) * gap, rows * ch + (rows + 1) * gap + foot), BACKGROUND)
    for i, cell in enumerate(cells):
        out.paste(cell, (gap + (i % cols) * (cw + gap), gap + (i // cols) * (ch + gap)))
    if footer:
        ImageDraw.Draw(out).text((gap, out.height - foot), footer, font=font(size), fill=(60, 60, 60))
    return out


def save_png(image: Image.Image, path) -> None:
    """Writes `image` as PNG through a temporary sibling, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format="PNG")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
