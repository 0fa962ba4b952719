"""FashionScenes generator: COCO validity, determinism, size ranges, splits, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from boxer.data import fashion_scenes as fs
from boxer.data.fashion_mnist import load_fashion_mnist
from boxer.data.scenes import SceneConfig, render_scene
from boxer.data.summary import size_range, summarize_coco
from boxer.errors import BoxerError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("split", ["train", "val"])
def test_pycocotools_loads_and_annotations_match_masks(fashion_scenes_tiny, split):
    coco = COCO(str(fashion_scenes_tiny / "annotations" / f"instances_{split}.json"))
    cats = coco.loadCats(coco.getCatIds())
    assert [c["id"] for c in cats] == list(range(1, 11))
    assert cats[0]["name"] == "T-shirt/top" and all(c["supercategory"] for c in cats)
    assert len(coco.getImgIds()) == {"train": 8, "val": 6}[split]
    for img in coco.loadImgs(coco.getImgIds()):
        with Image.open(fashion_scenes_tiny / split / img["file_name"]) as f:
            assert f.size == (img["width"], img["height"]) == (128, 128) and f.mode == "RGB"
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert anns, "every scene has at least one item"
        cover = np.zeros((128, 128), dtype=int)
        for ann in anns:
            assert isinstance(ann["segmentation"]["counts"], str) and ann["iscrowd"] == 0
            mask = coco.annToMask(ann)
            cover += mask
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["area"] == mask.sum() > 0
        assert cover.max() == 1, "visible masks after occlusion never overlap"


def test_same_seed_same_bytes_any_workers(tmp_path, fashion_root):
    args = dict(train=4, val=3, size=96, max_objects=3, seed=5, fashion_root=fashion_root)
    fs.generate_fashion_scenes(tmp_path / "a", workers=1, **args)
    fs.generate_fashion_scenes(tmp_path / "b", workers=2, **args)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 4 + 3 + 2
    assert a == b
    fs.generate_fashion_scenes(tmp_path / "c", workers=1, **{**args, "seed": 6})
    assert _files(tmp_path / "c") != a


def test_size_ranges_at_default_size(fashion_root):
    """At S = 256 each COCO size range holds >= 15% of the instances (here of 40 val scenes)."""
    items, labels = (t.numpy() for t in load_fashion_mnist("test", fashion_root))
    cfg = SceneConfig(size=256)
    areas = []
    for i in range(40):
        _, instances = render_scene(np.random.default_rng([0, 2, i]), items, labels, cfg)
        areas += [int(m.sum()) for _, m, _ in instances]
    shares = {r: np.mean([size_range(a) == r for a in areas]) for r in ("small", "medium", "large")}
    assert min(shares.values()) >= 0.15, shares


def test_occlusion_is_bounded_and_background_not_blank(fashion_root):
    items, labels = (t.numpy() for t in load_fashion_mnist("test", fashion_root))
    cfg = SceneConfig(size=160, max_objects=8)
    for i in range(10):
        image, instances = render_scene(np.random.default_rng([1, 2, i]), items, labels, cfg)
        for _, mask, full in instances:
            assert mask.sum() >= (1 - cfg.max_occlusion) * full
        background = ~np.any([m for _, m, _ in instances], axis=0)
        pixels = image[background].astype(float)  # P, 3
        assert pixels.std(axis=0).max() > 2.0, "background has texture / gradient / noise"
        assert len(np.unique(pixels, axis=0)) > 100


def test_train_uses_train_split_val_uses_test_split(tmp_path, fashion_root, monkeypatch):
    calls = []
    real = fs.load_fashion_mnist

    def spy(split, root=None):
        calls.append(split)
        return real(split, root)

    monkeypatch.setattr(fs, "load_fashion_mnist", spy)
    fs.generate_fashion_scenes(tmp_path / "d", train=2, val=2, size=96, fashion_root=fashion_root, workers=1)
    assert calls == ["train", "test"]
    info = json.loads((tmp_path / "d" / "annotations" / "instances_val.json").read_text())["info"]
    assert info["fashion_mnist_split"] == "test" and info["seed"] == 0


def test_failure_leaves_nothing_behind(tmp_path, fashion_root, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("crash while rendering")

    monkeypatch.setattr(fs, "render_scene", boom)
    with pytest.raises(RuntimeError):
        fs.generate_fashion_scenes(
            tmp_path / "e", train=2, val=2, size=96, fashion_root=fashion_root, workers=1
        )
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_needs_overwrite(tmp_path, fashion_root):
    out = tmp_path / "f"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(BoxerError, match="--overwrite"):
        fs.generate_fashion_scenes(out, train=1, val=1, size=96, fashion_root=fashion_root, workers=1)
    fs.generate_fashion_scenes(
        out, train=1, val=1, size=96, fashion_root=fashion_root, workers=1, overwrite=True
    )
    assert not (out / "keep.txt").exists()
    assert summarize_coco(out / "annotations" / "instances_val.json").num_images == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize(
    "kwargs, field",
    [({"train": -1}, "--train"), ({"size": 16}, "--size"), ({"max_objects": 0}, "--max-objects")],
)
def test_bad_arguments(tmp_path, kwargs, field):
    with pytest.raises(BoxerError, match=field):
        fs.generate_fashion_scenes(tmp_path / "g", **kwargs)


def test_rle_round_trip(fashion_scenes_tiny):
    data = json.loads((fashion_scenes_tiny / "annotations" / "instances_train.json").read_text())
    ann = data["annotations"][0]
    rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
    assert mask_utils.area(rle) == ann["area"]


def test_excluded_classes_are_never_drawn_nor_listed(tmp_path, fashion_root):
    out = tmp_path / "seen"
    written = fs.generate_fashion_scenes(
        out, train=6, val=4, size=96, max_objects=5, seed=3, fashion_root=fashion_root, workers=1,
        exclude_classes="bag, Ankle boot",
    )  # fmt: skip
    for split, path in written.items():
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        assert 9 not in names and 10 not in names and names[8] == "Sneaker" and len(names) == 8, split
        assert data["annotations"] and {a["category_id"] for a in data["annotations"]} <= set(names)
        assert data["info"]["excluded_classes"] == ["Bag", "Ankle boot"]


@pytest.mark.parametrize(
    "names, match", [("Bag,Unicorn", "unknown class 'Unicorn'"), ("Bag,bag", "class 'bag' given twice")]
)
def test_bad_excluded_classes(tmp_path, names, match):
    with pytest.raises(BoxerError, match=f"--exclude-classes: {match}"):
        fs.generate_fashion_scenes(tmp_path / "g", train=2, val=0, exclude_classes=names)
