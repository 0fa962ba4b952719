"""Fashion-MNIST items rendered in the FashionScenes style, one per image: a classification set.

Backbone pretraining for the FashionScenes detector (the CPU analogue of an ImageNet-pretrained
backbone for COCO). Each sample draws one Fashion-MNIST item, scales it to a random size, colourises
it against a textured background from the scene renderer (`boxer.data.scenes`) and returns the
normalised RGB image with the item's class. Nothing here comes from FashionScenes' own images: the
items are Fashion-MNIST's, and which split they come from is the caller's choice (train for
pretraining, so the detector's val scenes, drawn from the test split, stay unseen).

Every sample is a pure function of (seed, epoch, index), so a run is reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from boxer.data.coco import IMAGENET_MEAN, IMAGENET_STD
from boxer.data.scenes import _background, _item_mask_and_shade, _pick_colour

__all__ = ["FashionItems"]


class FashionItems(Dataset):
    """Single colourised Fashion-MNIST items on scene backgrounds.

    Args:
        images: Fashion-MNIST items `Tensor[N, 28, 28]` uint8.
        labels: their classes `Tensor[N]` in 0..9.
        size: side of the square output image in pixels.
        min_side: smallest long side of the item, as a fraction of `size`.
        max_side: largest long side of the item, as a fraction of `size`.
        seed: base of every sample's random generator.
        augment: random horizontal flip (and a new rendering every epoch); False renders each index
            the same way every time (validation).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        size: int = 64,
        min_side: float = 0.3,
        max_side: float = 0.95,
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        if images.ndim != 3 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"images [N, 28, 28] and labels [N] expected, got {tuple(images.shape)}, "
                             f"{tuple(labels.shape)}")  # fmt: skip
        if not 0 < min_side <= max_side <= 1:
            raise ValueError(f"need 0 < min_side <= max_side <= 1, got {min_side}, {max_side}")
        self.images = images.numpy()
        self.labels = labels.long()
        self.size, self.min_side, self.max_side = size, min_side, max_side
        self.seed, self.augment = seed, augment
        self.epoch = 0
        self._mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
        self._std = np.asarray(IMAGENET_STD, dtype=np.float32)

    def set_epoch(self, epoch: int) -> None:
        """A new rendering of every item for each epoch (when augmenting)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def render(self, index: int) -> np.ndarray:
        """The `[S, S, 3]` float image in [0, 1] of item `index`."""
        rng = np.random.default_rng([self.seed, self.epoch if self.augment else 0, index])
        s = self.size
        canvas = _background(rng, s)  # S, S, 3
        side = rng.uniform(self.min_side, self.max_side) * s
        aspect = float(np.exp(rng.uniform(-0.2, 0.2)))
        h = int(np.clip(round(side * aspect), 4, s))
        w = int(np.clip(round(side / aspect), 4, s))
        mask, shade = _item_mask_and_shade(self.images[index], h, w)  # h, w
        y, x = int(rng.integers(0, s - h + 1)), int(rng.integers(0, s - w + 1))
        region = canvas[y : y + h, x : x + w]
        if mask.any():
            colour = _pick_colour(rng, region[mask].mean(axis=0))
            region[mask] = colour * (0.3 + 0.7 * shade[mask, None])
        if self.augment and rng.random() < 0.5:
            canvas = canvas[:, ::-1]
        return np.clip(canvas, 0.0, 1.0)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = (self.render(index) - self._mean) / self._std  # S, S, 3
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), self.labels[index]
