"""Export of trained models to ONNX and torch.export (.pt2), post-processing included.

The exported graph is the model's inference path traced through the pure-PyTorch ops: under
`torch.export` box-attention runs the per-level `grid_sample` reference inline (never Triton; see
`boxer.ops.library.box_attention_core`), so the ONNX graph holds standard ops only (GridSample,
opset >= 16; we write opset 18, the dynamo exporter's lowest). Both formats come from one
`torch.export.export` of a small wrapper module:

- BoxeR-2D: inputs `images: float32[B, 3, H, W]` (normalised) and `orig_sizes: int64[B, 2]` (h0, w0);
  outputs `boxes: float32[B, K, 4]` xyxy in original pixels (clipped), `scores: float32[B, K]`,
  `labels: int64[B, K]`, and for mask models `masks: bool[B, K, H, W]` (pixels of `images`).
- DETR: the same, K = num_queries.
- classifiers: `images: float32[B, C_in, S, S]` -> `logits: float32[B, C]`.

B is dynamic everywhere; H and W are dynamic for the detectors (any size >= MIN_SIDE); classifiers
keep the export size. Images of one batch share one size (no padding mask in the graph). Masks
come at the size of `images`: equal to the PyTorch masks when no resize happened (h0, w0 = H, W);
`boxer predict --onnx` resizes them to the original size otherwise. Scores of mask models are
rescored with the pasted masks, as in `BoxeR2D.predict`. A detector names its wrapper
(`model.export_wrapper()`, written next to the model; docs/export.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from boxer.errors import BoxerError

FORMATS = ("onnx", "torch-export")
OPSET = 18
MIN_SIDE, MAX_SIDE = 96, 4096
META_KEY = "boxer"  # ONNX metadata_props key / .pt2 extra file holding the metadata JSON


def wrap(model: nn.Module) -> tuple[nn.Module, str]:
    """The export wrapper of a model and its kind ("boxer2d", "detr" or "classifier").

    A detector names its own wrapper (`model.export_wrapper()`, with the post-processing; its
    `kind` attribute is the kind); a classifier is exported as it is.
    """
    from boxer.models.classifiers import ImageClassifier

    if hasattr(model, "export_wrapper"):
        wrapper = model.export_wrapper()
        return wrapper.eval(), wrapper.kind
    if isinstance(model, ImageClassifier):
        return model.eval(), "classifier"
    raise BoxerError(f"export: {type(model).__name__} cannot be exported (only BoxeR-2D, DETR, classifiers)")


def example_inputs(
    kind: str, height: int, width: int, batch: int = 2, channels: int = 3
) -> tuple[Tensor, ...]:
    """Inputs to trace with (batch 2, so that the batch stays symbolic)."""
    images = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(0))
    if kind == "classifier":
        return (images,)
    return images, torch.tensor([[height, width]] * batch)


def dynamic_shapes(kind: str) -> dict[str, dict[int, Any]]:
    """Dynamic batch; dynamic H, W for the detectors."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1024)
    if kind == "classifier":
        return {"x": {0: batch}}
    h, w = Dim("height", min=MIN_SIDE, max=MAX_SIDE), Dim("width", min=MIN_SIDE, max=MAX_SIDE)
    return {"images": {0: batch, 2: h, 3: w}, "orig_sizes": {0: batch}}


def output_names(kind: str, with_masks: bool) -> list[str]:
    if kind == "classifier":
        return ["logits"]
    return ["boxes", "scores", "labels"] + (["masks"] if with_masks else [])


def export_program(model: nn.Module, height: int, width: int) -> tuple[Any, str]:
    """`torch.export.export` of the model's wrapper; returns (ExportedProgram, kind)."""
    wrapper, kind = wrap(model.eval())
    inputs = example_inputs(kind, height, width, channels=getattr(model, "in_chans", 3))
    with torch.no_grad():
        return torch.export.export(wrapper, inputs, dynamic_shapes=dynamic_shapes(kind)), kind


def write_onnx(program, kind: str, out: Path, *, with_masks: bool, metadata: dict[str, Any]) -> None:
    """Writes the exported program as ONNX (opset OPSET) with `metadata` as JSON in metadata_props."""
    require_onnx()
    import onnx

    names = ["images", "orig_sizes"] if kind != "classifier" else ["images"]
    quiet = [logging.getLogger(n) for n in ("onnx_ir", "onnxscript")]  # their INFO lines, per pass
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.WARNING)
        onnx_program = torch.onnx.export(
            program, input_names=names, output_names=output_names(kind, with_masks),
            opset_version=OPSET, dynamo=True, verbose=False,
        )  # fmt: skip
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    proto = onnx_program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(metadata)
    onnx.save(proto, str(out))


def require_onnx() -> None:
    """Raises a one-line BoxerError when the `export` extra (onnx, onnxruntime) is missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise BoxerError(f"ONNX export needs {', '.join(missing)}: pip install 'boxer[export]'")


def load_for_export(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A detector or classifier checkpoint, on the CPU, in eval mode; and its config."""
    from boxer.engine import checkpoint as ckpt

    point = ckpt.load_checkpoint(checkpoint, with_state=False)
    config = point.config
    if config.get("task") == "classification":  # written by `boxer train-cls`: rebuilt as it was
        from boxer.models import MODELS

        kwargs = config.get("model_kwargs", {})
        model = MODELS.create(config["model"], num_classes=config["num_classes"], **kwargs)
        ckpt.load_model_weights(model, point.weights, point.path, config["model"])
        return model.eval(), config
    from boxer.engine.runner import load_detector

    return load_detector(checkpoint, torch.device("cpu"))


def export_metadata(
    model: nn.Module, kind: str, config: dict[str, Any], size: tuple[int, int]
) -> dict[str, Any]:
    """What a deployment needs besides the graph: classes, preprocessing, input and output names."""
    from boxer.data import IMAGENET_MEAN, IMAGENET_STD

    meta: dict[str, Any] = {
        "kind": kind,
        "model": config.get("model"),
        "export_size": list(size),
        "opset": OPSET,
    }
    meta["num_classes"] = int(getattr(model, "num_classes", config.get("num_classes", 0)))
    meta["class_names"], meta["cat_ids"] = config.get("class_names"), config.get("cat_ids")
    meta["with_masks"] = bool(getattr(model, "with_masks", False))
    meta["nms_iou"] = getattr(model, "nms_iou", None)  # applied after the graph (onnx_predict.py)
    meta["outputs"] = output_names(kind, meta["with_masks"])
    meta["dynamic"] = ["batch"] if kind == "classifier" else ["batch", "height", "width"]
    if kind != "classifier":
        from boxer.engine.runner import _sizes_of

        cfg = _sizes_of(config)
        meta["image_size"], meta["max_size"] = cfg.image_size, cfg.max_size
        meta["mean"], meta["std"] = list(IMAGENET_MEAN), list(IMAGENET_STD)
    return meta


def export_checkpoint(
    checkpoint: str | Path, fmt: str, out: str | Path, *, image_size: int | None = None
) -> dict[str, Any]:
    """Exports a checkpoint to `out` (ONNX or a torch.export .pt2); returns the metadata written.

    Args:
        checkpoint: a checkpoint directory (RUN/best, RUN/last).
        fmt: "onnx" or "torch-export".
        out: the file to write.
        image_size: the side of the square example image to trace with (default: the checkpoint's
            eval size; classifiers: their input size, which stays fixed).
    """
    if fmt not in FORMATS:
        raise BoxerError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        require_onnx()
    model, config = load_for_export(checkpoint)
    _, kind = wrap(model)
    if image_size is None and kind == "classifier":
        image_size = model.img_size
    side = image_size or export_metadata(model, kind, config, (0, 0))["image_size"]
    program, kind = export_program(model, side, side)
    meta = export_metadata(model, kind, config, (side, side))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        write_onnx(program, kind, out, with_masks=meta["with_masks"], metadata=meta)
    else:
        torch.export.save(program, str(out), extra_files={f"{META_KEY}.json": json.dumps(meta)})
    return meta


def load_program_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata JSON of an exported file (.onnx or .pt2)."""
    path = Path(path)
    if path.suffix == ".onnx":
        require_onnx()
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    else:
        extra = {f"{META_KEY}.json": ""}
        torch.export.load(str(path), extra_files=extra)
        props = {META_KEY: extra[f"{META_KEY}.json"]}
    if not props.get(META_KEY):
        raise BoxerError(f"{path}: no boxer metadata; export it with `boxer export`")
    return json.loads(props[META_KEY])
