"""`boxer viz attention`: per image, a figure per top detection (decoder), one for the encoder token
under `--pixel`, `<stem>_attention.npz` with every number drawn, and `attention.json` (index).

Images get the eval preprocessing of `boxer predict` (`boxer.engine.predict.ImageFiles`); the
checkpoint loads as in `boxer predict` (`boxer.engine.runner.load_detector`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from boxer.errors import BoxerError
from boxer.viz.attention_figures import attention_grid
from boxer.viz.box_attention import ImageAttention, image_attention, is_box_attention_model
from boxer.viz.figures import save_figure

ARRAYS = {
    "det_boxes": "[N, 4] detection boxes xyxy, pixels of the image file",
    "det_scores": "[N]",
    "det_labels": "[N] contiguous class index (class_names order)",
    "det_queries": "[N] decoder query of each detection",
    "dec_reference": "[N, Y, 4] reference window (proposal) xyxy pixels",
    "dec_windows": "[N, Y, H, L, 4] transformed window per layer, head, level; xyxy pixels",
    "dec_points": "[N, Y, H, L, m, m, 2] sampling points (x, y) pixels",
    "dec_weights": "[N, Y, H, L, m, m] attention weights (sum 1 per head over levels and cells)",
    "dec_layers": "[Y] decoder layer of each row",
    "enc_*": "the same for the encoder tokens under --pixel (N = one token per level)",
    "enc_pixel": "[2] the encoder's query pixel (x, y)",
}


def _load(path: Path):
    from boxer.data.images import read_image

    return read_image(path).permute(1, 2, 0).numpy()  # h0, w0, 3 uint8


def _batch(dataset, index: int, device: torch.device):
    from boxer.data import collate_detection

    batch = collate_detection([dataset[index]])
    return batch.images.to(device), batch.pad_mask.to(device), batch.targets[0]


def _figures(att: ImageAttention, image: np.ndarray, stem: str, out: Path, names: list[str]) -> list[str]:
    det, written = att.detections, []
    for k in range(att.decoder.windows.shape[0]):
        label, score = int(det["labels"][k]), float(det["scores"][k])
        mask = det["masks"][k].numpy() if "masks" in det else None
        title = f"{stem}: detection {k + 1}, {names[label]} {score:.2f}, query {int(det['queries'][k])}"
        fig = attention_grid(image, att.decoder, k, strides=att.strides, title=title,
                             box=det["boxes"][k].numpy(), mask=mask)  # fmt: skip
        written.append(str(save_figure(fig, out / f"{stem}_det{k + 1}.png")))
    if att.encoder is not None:
        for level in range(att.encoder.windows.shape[0]):
            title = f"{stem}: encoder token under the pixel, query level {level}"
            fig = attention_grid(image, att.encoder, level, strides=att.strides, title=title,
                                 row_name="enc. layer", pixel=att.pixel)  # fmt: skip
            written.append(str(save_figure(fig, out / f"{stem}_encoder_level{level}.png")))
    return written


def _dump(att: ImageAttention, path: Path) -> None:
    n = att.decoder.windows.shape[0]
    det = att.detections
    arrays = {f"det_{k}": det[k][:n].numpy() for k in ("boxes", "scores", "labels", "queries")}
    arrays.update(att.decoder.arrays("dec"))
    if att.encoder is not None:
        arrays.update(att.encoder.arrays("enc"))
        arrays["enc_tokens"] = np.asarray(att.tokens, dtype=np.int64)
        arrays["enc_pixel"] = np.asarray(att.pixel, dtype=np.float32)
    np.savez_compressed(path, **arrays)


def write_attention(
    checkpoint: str,
    inputs: list[str],
    out_dir: str | Path,
    *,
    detections: int = 3,
    layers: list[int] | None = None,
    pixel: tuple[float, float] | str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Writes the figures and data of every image; returns the index written to attention.json."""
    from boxer.engine.distributed import pick_device
    from boxer.engine.predict import ImageFiles, assign_image_ids, list_images
    from boxer.engine.runner import _sizes_of, load_detector

    paths = list_images(inputs)
    model, config = load_detector(checkpoint, pick_device(device))
    if not is_box_attention_model(model):
        raise BoxerError(f"{checkpoint}: {config['model']} is not a BoxeR-2D model (no box-attention)")
    cfg = _sizes_of(config)
    dataset = ImageFiles(paths, assign_image_ids(paths), image_size=cfg.image_size, max_size=cfg.max_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"checkpoint": str(checkpoint), "arrays": ARRAYS, "images": []}
    device_ = next(model.parameters()).device
    for i, path in enumerate(paths):
        images, pad_mask, target = _batch(dataset, i, device_)
        att = image_attention(model, images, pad_mask, target, detections=detections, layers=layers,
                              pixel=pixel)  # fmt: skip
        stem = path.stem if [p.stem for p in paths].count(path.stem) == 1 else f"{path.stem}-{i}"
        figures = _figures(att, _load(path), stem, out, config["class_names"])
        _dump(att, out / f"{stem}_attention.npz")
        index["images"].append(_entry(path, att, figures, out / f"{stem}_attention.npz", config))
    (out / "attention.json").write_text(json.dumps(index, indent=1))
    return index


def _entry(path: Path, att: ImageAttention, figures: list[str], npz: Path, config: dict) -> dict:
    det, n = att.detections, att.decoder.windows.shape[0]
    return {
        "image": str(path),
        "figures": figures,
        "data": str(npz),
        "strides": att.strides,
        "detections": [
            {
                "class": config["class_names"][int(det["labels"][k])],
                "score": round(float(det["scores"][k]), 4),
                "box_xyxy": [round(float(v), 2) for v in det["boxes"][k]],
                "query": int(det["queries"][k]),
            }
            for k in range(n)
        ],  # fmt: skip
    }
