"""Shared fixtures (documented in docs/data.md).

- `fashion_root`: a folder with the four Fashion-MNIST IDX files. The real dataset when it is
  installed (or `BOXER_FASHION_MNIST` is set); otherwise a small synthetic stand-in with the same
  file format, so the suite never needs the network.
- `fashion_scenes_tiny`: a FashionScenes dataset generated once per session: 128x128 images,
  8 train and 6 val scenes, at most 4 items each, seed 0. Layout:
  `ROOT/{train,val}/*.png`, `ROOT/annotations/instances_{train,val}.json`.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from boxer.data.fashion_mnist import find_fashion_mnist
from boxer.data.fashion_scenes import generate_fashion_scenes
from boxer.errors import BoxerError

TINY_SCENES = {"train": 8, "val": 6, "size": 128, "max_objects": 4, "seed": 0}


def _write_standin_fashion_mnist(folder: Path, n: int = 200) -> None:
    """Writes IDX files of filled ellipses (random size, angle, shading), 10 balanced labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    names = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    for img_name, lbl_name in names.values():
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for k in range(n):
            a, b, t = rng.uniform(5, 13), rng.uniform(3, 13), rng.uniform(0, np.pi)
            u = ((xx - 13.5) * np.cos(t) + (yy - 13.5) * np.sin(t)) / a
            v = (-(xx - 13.5) * np.sin(t) + (yy - 13.5) * np.cos(t)) / b
            images[k] = np.where(u**2 + v**2 <= 1, rng.integers(90, 255, size=(28, 28)), 0)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(folder / f"{img_name}.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{lbl_name}.gz", "wb") as f:
            f.write(struct.pack(">II", 0x0801, n) + labels.tobytes())


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory) -> Path:
    try:
        return find_fashion_mnist(download=False)
    except BoxerError:
        folder = tmp_path_factory.mktemp("fashion-mnist-standin")
        _write_standin_fashion_mnist(folder)
        return folder


@pytest.fixture(scope="session")
def fashion_scenes_tiny(tmp_path_factory, fashion_root) -> Path:
    root = tmp_path_factory.mktemp("fashion-scenes") / "tiny"
    generate_fashion_scenes(root, fashion_root=fashion_root, workers=1, **TINY_SCENES)
    return root
