"""Fashion-MNIST source: finds, decodes and caches the four IDX files.

Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) is the raw material of FashionScenes. The files are
looked for, in order:

1. the `root` argument (the CLI's `--fashion-root`), else the environment variable
   `BOXER_FASHION_MNIST`;
2. the Debian package `dataset-fashion-mnist`: `/usr/share/datasets/fashion-mnist`;
3. torchvision's `FashionMNIST` download, into `~/.cache/boxer` (or `$XDG_CACHE_HOME/boxer`).

Each folder may hold the gzipped (`*.gz`) or the raw IDX files. The download reuses torchvision's
`FashionMNIST`; decoding parses the IDX bytes directly (torchvision's `read_image_file` only takes
an uncompressed path, which would mean writing 47 MB temporary files). Decoded splits are cached
in-process.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from boxer.errors import BoxerError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DEBIAN_DIR",
    "ENV_VAR",
    "class_indices",
    "find_fashion_mnist",
    "load_fashion_mnist",
]

log = logging.getLogger(__name__)

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
ENV_VAR = "BOXER_FASHION_MNIST"


def class_indices(names: str | list[str] | tuple[str, ...], *, flag: str = "--exclude-classes") -> list[int]:
    """Fashion-MNIST class indices (0..9, sorted) of comma-separated or listed class names, matched
    case-insensitively; an unknown or repeated name is a BoxerError naming `flag`."""
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [n.strip() for n in names]
    items = [n for n in items if n]
    lower = [c.lower() for c in FASHION_MNIST_CLASSES]
    out = []
    for name in items:
        if name.lower() not in lower:
            raise BoxerError(f"{flag}: unknown class {name!r}; classes: {', '.join(FASHION_MNIST_CLASSES)}")
        if lower.index(name.lower()) in out:
            raise BoxerError(f"{flag}: class {name!r} given twice")
        out.append(lower.index(name.lower()))
    if len(out) >= len(FASHION_MNIST_CLASSES):
        raise BoxerError(f"{flag}: cannot exclude every class")
    return sorted(out)


DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
_CACHE: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "boxer"


def _locate(folder: Path, stem: str) -> Path | None:
    """The raw or gzipped IDX file `stem` directly in `folder` (or in torchvision's layout)."""
    for sub in ("", "FashionMNIST/raw", "raw"):
        for name in (stem, stem + ".gz"):
            path = folder / sub / name
            if path.is_file():
                return path
    return None


def _has_split_files(folder: Path) -> bool:
    return all(_locate(folder, stem) is not None for pair in _FILES.values() for stem in pair[:2])


def _download(cache: Path) -> Path:
    """Downloads Fashion-MNIST with torchvision into `cache`; returns the folder holding the files."""
    from torchvision.datasets import FashionMNIST

    cache.mkdir(parents=True, exist_ok=True)
    log.info("downloading Fashion-MNIST with torchvision into %s", cache)
    for train in (True, False):
        FashionMNIST(str(cache), train=train, download=True)
    return cache / "FashionMNIST" / "raw"


def find_fashion_mnist(root: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The folder that holds the four Fashion-MNIST IDX files, following the documented order.

    Args:
        root: a folder given by the user; when set (or when `BOXER_FASHION_MNIST` is set) it must
            hold the files, no other place is tried.
        download: try torchvision's download when no local copy exists.

    Raises:
        BoxerError: no source works; the message names all three ways to provide the files.
    """
    user = root if root is not None else os.environ.get(ENV_VAR) or None
    if user is not None:
        folder = Path(user).expanduser()
        if _has_split_files(folder):
            return folder
        what = "--fashion-root" if root is not None else ENV_VAR
        raise BoxerError(
            f"{folder}: ({what}) does not hold the four Fashion-MNIST IDX files "
            f"(train/t10k -images-idx3-ubyte/-labels-idx1-ubyte, optionally .gz)"
        )
    for folder in (Path(DEBIAN_DIR), _cache_dir() / "FashionMNIST" / "raw"):
        if _has_split_files(folder):
            return folder
    problem = "not found"
    if download:
        try:
            return _download(_cache_dir())
        except Exception as err:  # network, disk, checksum: all mean "this way did not work"
            problem = f"torchvision download failed ({type(err).__name__}: {err})".replace("\n", " ")
    raise BoxerError(
        f"Fashion-MNIST: {problem}. Provide it one of three ways: pass --fashion-root DIR or set "
        f"{ENV_VAR}=DIR (a folder with the four IDX files); install the Debian package "
        f"dataset-fashion-mnist (files in {DEBIAN_DIR}); or allow torchvision to download it "
        f"into {_cache_dir()} (needs internet)"
    )


def _parse_idx(data: bytes, *, ndim: int) -> Tensor:
    """Decodes an unsigned-byte IDX blob: magic 0x0000 08 NDIM, NDIM big-endian uint32 sizes, then data."""
    if len(data) < 4 + 4 * ndim or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise ValueError(f"expected an unsigned-byte IDX file with {ndim} dimension(s)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"header says {shape}, file holds {body.size} bytes of data")
    return torch.from_numpy(body.reshape(shape).copy())


def _read_idx(path: Path, *, images: bool) -> Tensor:
    """Reads one (optionally gzipped) IDX file: `[N, 28, 28]` uint8 images or `[N]` uint8 labels."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            return _parse_idx(f.read(), ndim=3 if images else 1)
    except (OSError, EOFError, ValueError) as err:
        raise BoxerError(f"{path}: not a valid IDX file ({err})") from err


def load_fashion_mnist(split: str, root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """Loads one Fashion-MNIST split.

    Args:
        split: "train" (60,000 items) or "test" (10,000 items).
        root: optional folder with the IDX files (see `find_fashion_mnist`).

    Returns:
        images `Tensor[N, 28, 28]` uint8 (0 = background) and labels `Tensor[N]` int64 in 0..9.
    """
    if split not in _FILES:
        raise BoxerError(f"split: expected 'train' or 'test', got {split!r}")
    folder = find_fashion_mnist(root)
    key = (str(folder.resolve()), split)
    if key not in _CACHE:
        img_stem, lbl_stem, _ = _FILES[split]
        images = _read_idx(_locate(folder, img_stem), images=True)  # N, 28, 28
        labels = _read_idx(_locate(folder, lbl_stem), images=False)  # N
        if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
            raise BoxerError(
                f"{folder}: {split} images {tuple(images.shape)} and labels "
                f"{tuple(labels.shape)} do not match"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
            raise BoxerError(f"{folder}: {split} labels outside 0..9")
        _CACHE[key] = (images.contiguous(), labels.to(torch.int64))
    return _CACHE[key]
