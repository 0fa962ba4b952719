"""Scene rendering for FashionScenes: textured backgrounds with colourised, occluding items.

Our own synthetic benchmark (no paper). One scene is a square RGB canvas with 1..K Fashion-MNIST items
pasted at random positions. Each item is scaled so that its mask area falls in a COCO size range
(small < 32², medium, large > 96²) picked at random, colourised against its local background, and
drawn largest first, so small items lie on top. An item is only placed where it hides at most
`max_occlusion` of every item beneath it (bounded occlusion); after a few failed tries it is
dropped. The renderer is a pure function of its random generator, which makes the dataset
byte-reproducible from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["DEFAULT_TRAIN", "DEFAULT_VAL", "SceneConfig", "SIZE_BUCKETS", "render_scene"]

DEFAULT_TRAIN = 1600  # scenes of the standard FashionScenes train split
DEFAULT_VAL = 400  # and of its val split

# Target full (unoccluded) mask areas at S = 256, per COCO size range; scaled by (S / 256)².
# The ends keep clear of the 32² / 96² borders so that mild occlusion rarely moves an item across.
SIZE_BUCKETS: dict[str, tuple[float, float]] = {
    "small": (120.0, 850.0),
    "medium": (1500.0, 7000.0),
    "large": (12000.0, 26000.0),
}
_MASK_LEVEL = 40  # Fashion-MNIST intensity (0..255) above which a pixel belongs to the item


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn.

    Attributes:
        size: side of the square canvas in pixels.
        max_objects: most items per scene (at least 1).
        max_occlusion: largest fraction of an item's pixels that later items may hide.
        bucket_probs: probability of drawing a small, medium or large item.
        tries: placement attempts per item before it is dropped.
    """

    size: int = 256
    max_objects: int = 6
    max_occlusion: float = 0.4
    bucket_probs: tuple[float, float, float] = (0.36, 0.32, 0.32)
    tries: int = 15


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random `cells`² grid upsampled bicubically to `size`²."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    up = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(up, dtype=np.float32) / 255.0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A colour gradient with low-frequency texture, optional stripes and grain: `[S, S, 3]` in [0, 1].

    Three scalar fields (gradient ramp, texture, stripes + grain) are mixed into RGB by one
    `[S*S, 3] @ [3, 3]` product, which is much cheaper than broadcasting each over the channels.
    """
    c0, c1 = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    fields = np.empty((size, size, 3), dtype=np.float32)  # ramp, texture, shade
    t = ramp[None, :] * np.float32(np.cos(angle)) + ramp[:, None] * np.float32(np.sin(angle))  # S, S
    fields[..., 0] = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    tint = rng.random(3, dtype=np.float32) - 0.5
    fields[..., 1] = _smooth_noise(rng, size, int(rng.integers(3, 9))) - 0.5
    shade = fields[..., 2]
    if rng.random() < 0.5:  # stripes of random period and orientation
        cycles = size / (rng.uniform(6, 24) * size / 256)
        phi = rng.uniform(0, np.pi)
        u = ramp[None, :] * np.float32(np.cos(phi) * cycles) + ramp[:, None] * np.float32(
            np.sin(phi) * cycles
        )
        shade[:] = np.float32(rng.uniform(0.03, 0.1)) * np.sin(np.float32(2 * np.pi) * u)
    else:
        shade[:] = 0.0
    grain = np.float32(rng.uniform(0.004, 0.014))  # uniform monochrome film grain, std ~ 0.3 * grain
    shade += (rng.random((size, size), dtype=np.float32) - np.float32(0.5)) * grain
    mix = np.stack([c1 - c0, np.float32(0.35) * tint, np.ones(3, dtype=np.float32)])  # 3 fields -> RGB
    return (fields.reshape(-1, 3) @ mix).reshape(size, size, 3) + c0


def _item_mask_and_shade(item: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Resizes a 28×28 uint8 item to `height`×`width`: boolean mask and shading in [0, 1]."""
    resized = np.asarray(Image.fromarray(item).resize((width, height), Image.BILINEAR), dtype=np.float32)
    return resized > _MASK_LEVEL, resized / 255.0


def _pick_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random RGB colour that stands out from the mean colour `under` (best of a few draws)."""
    best, best_d = None, -1.0
    for _ in range(6):
        c = rng.random(3)
        d = float(np.abs(c - under).sum())
        if d > best_d:
            best, best_d = c, d
        if d > 0.6:
            break
    return best


def _plan_item(rng, item: np.ndarray, cfg: SceneConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """Draws a size range and a scale for one item; returns its (tight) mask and shading."""
    fill = max(float((item > _MASK_LEVEL).mean()), 0.05)
    lo, hi = SIZE_BUCKETS[["small", "medium", "large"][rng.choice(3, p=cfg.bucket_probs)]]
    scale = (cfg.size / 256.0) ** 2
    area = max(float(np.exp(rng.uniform(np.log(lo * scale), np.log(hi * scale)))), 48.0)  # >= 48 px at any S
    aspect = float(np.exp(rng.uniform(-0.2, 0.2)))
    side = np.sqrt(area / fill)
    h = int(np.clip(round(side * aspect), 4, 0.95 * cfg.size))
    w = int(np.clip(round(side / aspect), 4, 0.95 * cfg.size))
    mask, shade = _item_mask_and_shade(item, h, w)
    ys, xs = np.nonzero(mask)
    if ys.size < 16:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return mask[y0:y1, x0:x1], shade[y0:y1, x0:x1]


def _place(rng, mask: np.ndarray, owner: np.ndarray, full: list[int], visible: list[int], cfg) -> tuple:
    """Finds a top-left corner where `mask` hides at most `max_occlusion` of every item below."""
    h, w = mask.shape
    size = owner.shape[0]
    for _ in range(cfg.tries):
        y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        under = owner[y : y + h, x : x + w][mask]  # ids of the pixels the item would cover
        lost = np.bincount(under[under >= 0], minlength=len(full))
        if all(visible[i] - lost[i] >= (1 - cfg.max_occlusion) * full[i] for i in range(len(full))):
            return y, x, lost
    return None


def render_scene(
    rng: np.random.Generator, items: np.ndarray, labels: np.ndarray, cfg: SceneConfig
) -> tuple[np.ndarray, list[tuple[int, np.ndarray, int]]]:
    """Renders one scene.

    Args:
        rng: the scene's own random generator (all randomness comes from it).
        items: Fashion-MNIST images `[N, 28, 28]` uint8 to draw from.
        labels: their class indices `[N]` (0..9).
        cfg: drawing parameters.

    Returns:
        the image `[S, S, 3]` uint8 and, per placed item in drawing order, `(class index, visible
        mask [S, S] bool, full mask area before occlusion)`; at least `1 - max_occlusion` of every
        item stays visible.
    """
    size = cfg.size
    canvas = _background(rng, size)  # S, S, 3
    owner = np.full((size, size), -1, dtype=np.int16)  # index of the topmost item per pixel
    n = int(rng.integers(1, cfg.max_objects + 1))
    picks = rng.integers(0, len(items), size=n)
    plans = [(p, _plan_item(rng, items[p], cfg)) for p in picks]
    plans = sorted((pl for pl in plans if pl[1] is not None), key=lambda pl: -int(pl[1][0].sum()))
    full, visible, classes = [], [], []
    for pick, (mask, shade) in plans:
        spot = _place(rng, mask, owner, full, visible, cfg)
        if spot is None:
            continue
        y, x, lost = spot
        visible = [v - int(lost[i]) for i, v in enumerate(visible)]
        region = canvas[y : y + mask.shape[0], x : x + mask.shape[1]]
        colour = _pick_colour(rng, region[mask].mean(axis=0))
        region[mask] = colour * (0.3 + 0.7 * shade[mask, None])
        owner[y : y + mask.shape[0], x : x + mask.shape[1]][mask] = len(full)
        full.append(int(mask.sum()))
        visible.append(full[-1])
        classes.append(int(labels[pick]))
    image = (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return image, [(c, owner == i, f) for i, (c, f) in enumerate(zip(classes, full))]
