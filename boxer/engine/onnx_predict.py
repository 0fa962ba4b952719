"""`boxer predict --onnx`: detections by an exported ONNX detector under onnxruntime.

No boxer model code runs: the images go through the eval preprocessing that `boxer predict` uses
(`boxer.engine.predict.ImageFiles`, the resize and normalisation stored in the file's metadata),
onnxruntime runs the graph one image at a time, and the outputs are written by the same
`write_outputs` (PNGs, results.json, images.json, grid). Masks come out of the graph at the size of
the network input and are resized (nearest) to the original size when the two differ. A model
trained with class-wise NMS (`nms_iou` in the metadata) gets it here, after the graph, as
`BoxeR2D.predict` applies it after its top-k (the graph keeps fixed-size outputs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from boxer.errors import BoxerError


def open_session(path: str | Path):
    """An onnxruntime CPU session of `path` and the boxer metadata stored in it."""
    from boxer.engine.export import load_program_metadata, require_onnx

    require_onnx()
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise BoxerError(f"--onnx: {path}: no such file")
    meta = load_program_metadata(path)
    if meta.get("kind") not in ("boxer2d", "detr"):
        raise BoxerError(f"--onnx: {path}: a {meta.get('kind')} model, not a detector")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), meta


def run_session(
    session, image: Tensor, orig_size: Tensor, outputs: list[str], *, nms_iou: float | None = None
) -> dict[str, Tensor]:
    """One image Tensor[3, H, W] (preprocessed) -> the prediction dict of the detector protocol;
    `nms_iou`: the model's class-wise NMS threshold (None: none)."""
    feeds = {"images": image[None].numpy(), "orig_sizes": orig_size[None].numpy().astype(np.int64)}
    result = dict(zip(outputs, session.run(outputs, feeds)))
    pred = {k: torch.from_numpy(result[k][0]) for k in ("boxes", "scores", "labels")}
    if "masks" in result:
        masks = torch.from_numpy(result["masks"][0])  # K, H, W bool at the input size
        h0, w0 = (int(v) for v in orig_size)
        if tuple(masks.shape[-2:]) != (h0, w0):
            masks = F.interpolate(masks[None].float(), size=(h0, w0), mode="nearest")[0] > 0.5
        pred["masks"] = masks
    if nms_iou is not None:
        keep = batched_nms(pred["boxes"].float(), pred["scores"].float(), pred["labels"], nms_iou)
        pred = {k: v[keep] for k, v in pred.items()}
    return pred


def predict_images_onnx(
    onnx_file: str | Path,
    inputs: list[str],
    out_dir: str | Path,
    *,
    score: float | str = 0.3,
    top: int | None = None,
    gt: str | None = None,
    grid: str | None = None,
    score_images: int = 0,
    batch_size: int = 1,
    device: str = "cpu",
    log=print,
) -> dict[str, Any]:
    """`boxer.engine.runner.predict_images` with an ONNX file in place of a checkpoint.

    Images run one at a time on onnxruntime's CPU provider (`score_images`, `batch_size` and
    `device` are accepted for the same call and not used).
    """
    from boxer.engine import predict as P

    if score == "auto":
        raise BoxerError("--score auto needs the run's training images; with --onnx give --score FLOAT")
    session, meta = open_session(onnx_file)
    paths = P.list_images(inputs)
    ids = P.assign_image_ids(paths)
    P.refuse_overwrite(paths, P.output_paths(paths, ids, Path(out_dir)), "--out")
    truth = P.ground_truth_of(paths, gt, meta["cat_ids"]) if gt else None
    dataset = P.ImageFiles(paths, ids, image_size=meta["image_size"], max_size=meta["max_size"])
    outputs = meta["outputs"]
    predictions = {}
    for i in range(len(dataset)):
        image, target = dataset[i]
        predictions[target["image_id"]] = run_session(
            session, image, target["orig_size"], outputs, nms_iou=meta.get("nms_iou")
        )
    out = P.write_outputs(
        Path(out_dir), dataset, predictions, cat_ids=meta["cat_ids"], class_names=meta["class_names"],
        score=float(score), top=top, truth=truth, ann_name=Path(gt).name if gt else "",
        grid=Path(grid) if grid else None,
    )  # fmt: skip
    return {**out, "score": float(score)}
