"""FashionItems: single rendered Fashion-MNIST items for backbone pretraining."""

import numpy as np
import pytest
import torch

from boxer.data.coco import IMAGENET_MEAN, IMAGENET_STD
from boxer.data.fashion_items import FashionItems


def _items(n=8):
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    images[:, 6:22, 8:20] = torch.randint(60, 255, (n, 16, 12), generator=g, dtype=torch.uint8)
    return images, torch.arange(n) % 10


def test_sample_shape_label_and_normalisation():
    images, labels = _items()
    ds = FashionItems(images, labels, size=48)
    x, y = ds[3]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert int(y) == 3
    raw = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_item_is_drawn_and_sized():
    images, labels = _items()
    plain = FashionItems(torch.zeros_like(images), labels, size=64, seed=5, augment=False)
    drawn = FashionItems(images, labels, size=64, min_side=0.5, max_side=0.5, seed=5, augment=False)
    diff = np.abs(drawn.render(0) - plain.render(0)).sum(-1) > 1e-6  # the item's pixels
    ys, xs = np.nonzero(diff)
    assert ys.size > 0
    assert 0.25 * 64 <= max(np.ptp(ys), np.ptp(xs)) + 1 <= 0.6 * 64


def test_reproducible_per_epoch_and_fixed_without_augment():
    images, labels = _items()
    a = FashionItems(images, labels, seed=1)
    b = FashionItems(images, labels, seed=1)
    assert torch.equal(a[2][0], b[2][0])
    a.set_epoch(1)
    assert not torch.equal(a[2][0], b[2][0])
    fixed = FashionItems(images, labels, seed=1, augment=False)
    before = fixed[2][0]
    fixed.set_epoch(4)
    assert torch.equal(before, fixed[2][0])


def test_bad_arguments():
    images, labels = _items()
    with pytest.raises(ValueError, match="labels"):
        FashionItems(images, labels[:3])
    with pytest.raises(ValueError, match="min_side"):
        FashionItems(images, labels, min_side=0.9, max_side=0.5)
