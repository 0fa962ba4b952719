"""Classification data: Fashion-MNIST splits held as uint8 tensors, batched without a DataLoader.

Splits: the official 60,000 training images are shuffled once with a fixed seed and `val_size` of
them are held out for validation (model selection); the official 10,000 test images are only used
for the final report, never for tuning. Batches are cut from in-memory tensors (the whole dataset is
47 MB), converted to float, normalised and, for training, augmented on the batch (`augment.py`).
The model decides the input: `in_chans` (gray images are repeated to 3 channels for RGB models) and
`img_size` (bilinear resize when it is not 28).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from boxer.errors import BoxerError

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
DATASETS = ("fashion-mnist",)


@dataclass
class Split:
    """One split: images Tensor[N, H, W] uint8 and labels Tensor[N] int64."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())


@dataclass
class ClassificationData:
    """Train / val / test splits and the class names."""

    train: Split
    val: Split
    test: Split
    class_names: list[str]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_classification_data(
    name: str = "fashion-mnist",
    *,
    root: str | None = None,
    val_size: int = 5000,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> ClassificationData:
    """Loads a dataset and splits off a validation set from its training split.

    Args:
        name: dataset name ("fashion-mnist").
        root: folder with the dataset files (None: the default search of `boxer.data`).
        val_size: training images held out for validation.
        seed: seed of the train/val shuffle.
        limit_train: keep only the first N training images after the split (smoke runs).
        limit_test: keep only the first N test images (smoke runs; the report says so).
    """
    if name not in DATASETS:
        raise BoxerError(f"--data: unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist

    images, labels = load_fashion_mnist("train", root)
    test_images, test_labels = load_fashion_mnist("test", root)
    if not 0 < val_size < len(labels):
        raise BoxerError(f"--val-size: must lie in 1..{len(labels) - 1}, got {val_size}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if limit_train is not None:
        train_idx = train_idx[:limit_train]
    test = Split(test_images[:limit_test], test_labels[:limit_test])
    return ClassificationData(
        train=Split(images[train_idx], labels[train_idx]),
        val=Split(images[val_idx], labels[val_idx]),
        test=test,
        class_names=list(FASHION_MNIST_CLASSES),
        name=name,
    )


def to_model_input(images: Tensor, *, in_chans: int = 1, img_size: int | None = None) -> Tensor:
    """uint8 Tensor[B, H, W] -> normalised float Tensor[B, in_chans, S, S]."""
    x = (images.float().div_(255.0) - FASHION_MEAN) / FASHION_STD  # B, H, W
    x = x[:, None]  # B, 1, H, W
    if img_size is not None and tuple(x.shape[-2:]) != (img_size, img_size):
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    return x.expand(-1, in_chans, -1, -1) if in_chans != 1 else x


def iterate_batches(
    split: Split,
    *,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    prepare: Callable[[Tensor], Tensor] | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yields (inputs, labels) batches; `prepare` maps uint8 images to model inputs."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        images = split.images[idx]
        yield (prepare(images) if prepare else images), split.labels[idx]


def num_batches(split: Split, batch_size: int, *, drop_last: bool = False) -> int:
    n = len(split)
    return n // batch_size if drop_last and n >= batch_size else -(-n // batch_size)
