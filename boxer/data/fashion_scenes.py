"""FashionScenes: the bundled COCO-format detection and instance-segmentation benchmark.

Our own synthetic dataset (no paper), built from Fashion-MNIST (Xiao et al., 2017) by
`boxer.data.scenes`. Layout written by `generate_fashion_scenes(out, ...)`:

    out/train/000001.png ...             scenes from the Fashion-MNIST *train* split
    out/val/000001.png ...               scenes from the Fashion-MNIST *test* split
    out/annotations/instances_train.json
    out/annotations/instances_val.json

Annotations follow COCO: `bbox` xywh tight on the visible pixels, `area` = visible mask pixels,
`iscrowd` 0, `segmentation` = compressed RLE (counts as str) of the visible mask after occlusion,
categories 1..10 named after the Fashion-MNIST classes. `exclude_classes` leaves classes out
everywhere (no item of theirs is drawn, in either split, and they are not listed among the
categories; the other ids keep their numbers), for open-vocabulary checks on held-out classes
(docs/open_vocabulary.md): an unlabelled held-out item in a training scene would teach the detector
that it is background. Every scene has its own generator seeded by
(seed, split, index), so the output is byte-identical for a seed whatever the number of workers.
The folder appears atomically (built in a temporary sibling, then renamed).
"""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, class_indices, load_fashion_mnist
from boxer.data.io import atomic_dir, atomic_write_json
from boxer.data.scenes import DEFAULT_TRAIN, DEFAULT_VAL, SceneConfig, render_scene
from boxer.errors import BoxerError

__all__ = ["DEFAULT_TRAIN", "DEFAULT_VAL", "FORMAT_VERSION", "categories", "generate_fashion_scenes"]

log = logging.getLogger(__name__)

FORMAT_VERSION = "1.0"
_SPLITS = {"train": ("train", 1), "val": ("test", 2)}  # our split -> (Fashion-MNIST split, seed code)
_SUPERCATEGORY = {
    "Sandal": "footwear",
    "Sneaker": "footwear",
    "Ankle boot": "footwear",
    "Bag": "accessory",
}
_CHUNK = 32  # scenes per worker task
_STATE: dict = {}  # per-process: Fashion-MNIST arrays and the scene config


def categories(exclude: tuple[int, ...] | list[int] = ()) -> list[dict]:
    """COCO categories: ids 1..10 in Fashion-MNIST label order, with a supercategory; the class
    indices in `exclude` (0..9) are left out."""
    return [
        {"id": i + 1, "name": name, "supercategory": _SUPERCATEGORY.get(name, "clothing")}
        for i, name in enumerate(FASHION_MNIST_CLASSES)
        if i not in exclude
    ]


def _init_worker(items: np.ndarray, labels: np.ndarray, cfg: SceneConfig) -> None:
    _STATE.update(items=items, labels=labels, cfg=cfg)


def _instance_annotation(label: int, mask: np.ndarray) -> dict:
    """COCO annotation fields of one visible mask (ids are filled in later)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return {
        "category_id": label + 1,
        "bbox": [x, y, w, h],
        "area": float(mask_utils.area(rle)),
        "iscrowd": 0,
        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
    }


def _render_chunk(task: tuple[int, int, list[int], str]) -> list[list[dict]]:
    """Renders scenes `indices` of one split into `folder`; returns their annotations per scene."""
    seed, code, indices, folder = task
    items, labels, cfg = _STATE["items"], _STATE["labels"], _STATE["cfg"]
    out = []
    for index in indices:
        rng = np.random.default_rng([seed, code, index])
        image, instances = render_scene(rng, items, labels, cfg)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
        Path(folder, _file_name(index)).write_bytes(buf.getvalue())  # the whole folder is atomic
        out.append([_instance_annotation(label, mask) for label, mask, _ in instances])
    return out


def _file_name(index: int) -> str:
    return f"{index + 1:06d}.png"


def _render_split(tasks: list, items, labels, cfg: SceneConfig, workers: int) -> list[list[dict]]:
    """Runs the chunk tasks in order, in this process or in a pool of `workers` processes."""
    if workers <= 1 or len(tasks) <= 1:
        _init_worker(items, labels, cfg)
        return [ann for task in tasks for ann in _render_chunk(task)]
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(items, labels, cfg)
    ) as ex:
        return [ann for chunk in ex.map(_render_chunk, tasks) for ann in chunk]


def _coco_json(
    split: str, n: int, anns_per_image: list[list[dict]], cfg: SceneConfig, seed: int, exclude: list[int]
) -> dict:
    images, annotations = [], []
    for index, anns in enumerate(anns_per_image):
        image_id = index + 1
        images.append({"id": image_id, "file_name": _file_name(index), "width": cfg.size, "height": cfg.size})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    info = {
        "description": f"FashionScenes {split}: Fashion-MNIST items composed into scenes by boxer",
        "version": FORMAT_VERSION,
        "fashion_mnist_split": _SPLITS[split][0],
        "seed": seed,
        "size": cfg.size,
        "max_objects": cfg.max_objects,
        "max_occlusion": cfg.max_occlusion,
    }
    if exclude:
        info["excluded_classes"] = [FASHION_MNIST_CLASSES[i] for i in exclude]
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories(exclude),
    }


def is_fashion_scenes(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a FashionScenes dataset written by this generator."""
    for split in _SPLITS:
        path = Path(folder) / "annotations" / f"instances_{split}.json"
        if path.is_file():
            with open(path, encoding="utf-8") as f:
                head = f.read(200)
            return '"description":"FashionScenes' in head
    return False


def _check_args(train: int, val: int, size: int, max_objects: int, seed: int) -> None:
    if train < 0 or val < 0 or train + val == 0:
        raise BoxerError(f"--train/--val: need non-negative counts, not both 0 (got {train}, {val})")
    if size < 64:
        raise BoxerError(f"--size: must be at least 64 pixels (got {size})")
    if not 1 <= max_objects <= 50:
        raise BoxerError(f"--max-objects: must be in 1..50 (got {max_objects})")
    if seed < 0:
        raise BoxerError(f"--seed: must be non-negative (got {seed})")


def generate_fashion_scenes(
    out: str | os.PathLike,
    *,
    train: int = DEFAULT_TRAIN,
    val: int = DEFAULT_VAL,
    size: int = 256,
    max_objects: int = 6,
    seed: int = 0,
    fashion_root: str | os.PathLike | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    exclude_classes: str | list[str] | tuple[str, ...] = (),
) -> dict[str, Path]:
    """Writes a FashionScenes dataset to `out` (see the module docstring for the layout).

    Args:
        out: the dataset folder; created atomically, must not exist unless `overwrite`.
        train: number of train scenes (from the Fashion-MNIST train split).
        val: number of val scenes (from the Fashion-MNIST test split).
        size: side of the square images in pixels; item scales follow it.
        max_objects: most items per scene.
        seed: the output is a pure function of the seed and the other arguments.
        fashion_root: folder of the Fashion-MNIST IDX files (else the default search order).
        workers: processes used to render (default: up to 4, one per CPU); does not change the output.
        overwrite: replace an existing `out` that is not empty. A previous FashionScenes output is
            always replaced (regenerating is harmless); any other content needs `overwrite`.
        exclude_classes: Fashion-MNIST class names (a list or comma-separated) never drawn and not
            listed among the categories.

    Returns:
        the annotation file of each split that was written, by split name.
    """
    _check_args(train, val, size, max_objects, seed)
    exclude = class_indices(exclude_classes) if exclude_classes else []
    cfg = SceneConfig(size=size, max_objects=max_objects)
    if not overwrite and is_fashion_scenes(out):
        log.info("replacing the FashionScenes dataset in %s", out)
        overwrite = True
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    counts = {"train": train, "val": val}
    written = {}
    start = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "annotations").mkdir()
        for split, n in counts.items():
            if n == 0:
                continue
            fm_split, code = _SPLITS[split]
            items, labels = (t.numpy() for t in load_fashion_mnist(fm_split, fashion_root))
            if exclude:
                keep = ~np.isin(labels, exclude)
                items, labels = items[keep], labels[keep]
            (tmp / split).mkdir()
            chunks = [list(range(i, min(i + _CHUNK, n))) for i in range(0, n, _CHUNK)]
            tasks = [(seed, code, chunk, str(tmp / split)) for chunk in chunks]
            anns = _render_split(tasks, items, labels, cfg, workers)
            atomic_write_json(
                tmp / "annotations" / f"instances_{split}.json",
                _coco_json(split, n, anns, cfg, seed, exclude),
            )
            written[split] = Path(out) / "annotations" / f"instances_{split}.json"
    log.info(
        "FashionScenes: %s in %.1fs",
        ", ".join(f"{k} {v}" for k, v in counts.items()),
        time.perf_counter() - start,
    )
    return written
