"""Fashion-MNIST source: search order, decoding, the error naming all three ways."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from boxer.data import fashion_mnist as fm
from boxer.errors import BoxerError


def _write_idx(folder, n: int, *, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for img, lbl, _ in fm._FILES.values():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
        blobs = {
            img: struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes(),
            lbl: struct.pack(">II", 0x0801, n) + labels.tobytes(),
        }
        for stem, blob in blobs.items():
            opener = gzip.open if gz else open
            with opener(folder / (stem + (".gz" if gz else "")), "wb") as f:
                f.write(blob)


@pytest.mark.parametrize("gz", [True, False])
def test_loads_from_root(tmp_path, gz):
    _write_idx(tmp_path / "fm", 5, gz=gz)
    images, labels = fm.load_fashion_mnist("test", root=tmp_path / "fm")
    assert images.shape == (5, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (5,) and labels.dtype == torch.int64
    assert int(labels.max()) < 10


def test_env_var_is_used(tmp_path, monkeypatch):
    _write_idx(tmp_path / "env", 3, gz=True)
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "env"))
    assert fm.find_fashion_mnist() == tmp_path / "env"


def test_bad_root_names_the_folder(tmp_path):
    with pytest.raises(BoxerError, match="--fashion-root"):
        fm.find_fashion_mnist(tmp_path)


def test_nothing_found_names_three_ways(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "DEBIAN_DIR", str(tmp_path / "nope"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(BoxerError) as info:
        fm.find_fashion_mnist(download=False)
    msg = str(info.value)
    for way in ("--fashion-root", fm.ENV_VAR, "dataset-fashion-mnist", "torchvision"):
        assert way in msg
    assert "\n" not in msg


def test_corrupt_file_is_a_boxer_error(tmp_path):
    _write_idx(tmp_path / "fm", 2, gz=False)
    (tmp_path / "fm" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(BoxerError, match="t10k-images"):
        fm.load_fashion_mnist("test", root=tmp_path / "fm")


def test_bad_split():
    with pytest.raises(BoxerError, match="split"):
        fm.load_fashion_mnist("val")


HAS_DEBIAN = fm._has_split_files(fm.Path(fm.DEBIAN_DIR))


@pytest.mark.skipif(not HAS_DEBIAN, reason="Debian Fashion-MNIST not installed")
def test_real_dataset_shapes():
    images, labels = fm.load_fashion_mnist("test", root=fm.DEBIAN_DIR)
    assert images.shape == (10000, 28, 28)
    assert torch.bincount(labels).tolist() == [1000] * 10
    assert len(fm.FASHION_MNIST_CLASSES) == 10
