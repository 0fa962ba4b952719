"""Data: the Fashion-MNIST source, the FashionScenes generator, COCO-format datasets and the doctor."""

from __future__ import annotations

from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, find_fashion_mnist, load_fashion_mnist

__all__ = ["FASHION_MNIST_CLASSES", "find_fashion_mnist", "load_fashion_mnist"]
