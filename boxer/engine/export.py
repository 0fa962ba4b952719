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
rescored with the pasted masks, as in `BoxeR2D.predict`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert

from boxer.errors import BoxerError

FORMATS = ("onnx", "torch-export")
OPSET = 18
MIN_SIDE, MAX_SIDE = 96, 4096
MASK_THRESHOLD = 0.5  # foreground: probability >= 0.5, the official threshold
META_KEY = "boxer"  # ONNX metadata_props key / .pt2 extra file holding the metadata JSON


def _to_pixels(boxes: Tensor, sizes: Tensor) -> Tensor:
    """boxes Tensor[B, K, 4] cxcywh normalised, sizes Tensor[B, 2] (h, w) -> xyxy pixels, unclipped."""
    h, w = sizes[:, 0, None].to(boxes.dtype), sizes[:, 1, None].to(boxes.dtype)  # B, 1
    scale = torch.stack((w, h, w, h), dim=-1)  # B, 1, 4
    return box_convert(boxes, "cxcywh", "xyxy") * scale


class BoxeRExport(nn.Module):
    """BoxeR-2D inference with its post-processing, on a batch of same-size unpadded images.

    Args:
        model: a `BoxeR2D` in eval mode.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, orig_sizes: Tensor) -> tuple[Tensor, ...]:
        from boxer.models.boxer2d.postprocess import select_topk  # the model's own, when it is used

        m = self.model
        out = m._run(images, None, dense=False)
        logits, boxes = m.head(out.states[-1].t3, out.layer_windows(-1))  # B, Q, C / B, Q, 4
        scores, queries, labels = select_topk(logits.float(), m.num_select)  # B, K
        picked = boxes.float().gather(1, queries[..., None].expand(-1, -1, 4))  # B, K, 4 cxcywh
        xyxy = box_convert(picked, "cxcywh", "xyxy").clamp(0, 1)
        h0, w0 = orig_sizes[:, 0, None].float(), orig_sizes[:, 1, None].float()
        pixels = xyxy * torch.stack((w0, h0, w0, h0), dim=-1)  # B, K, 4
        if not m.with_masks:
            return pixels, scores, labels
        masks, scores = self._masks(out, logits, picked, queries, scores, images.shape[-2:])
        return pixels, scores, labels, masks

    def _masks(self, out, logits: Tensor, picked: Tensor, queries: Tensor, scores: Tensor, size):
        """Masks bool[B, K, H, W] at the input size and rescored scores, as `BoxeR2D._predict_masks`:
        the mask of a detection is its query's, in the channel of the query's argmax class, pasted
        into the unclipped box."""
        from boxer.models.boxer2d.masks import paste_masks

        m = self.model
        B, K = queries.shape
        feats = m.transformer.mask_features(out, len(out.states) - 1, queries)  # B, K, g, g, d
        classes = logits.argmax(-1).gather(1, queries)  # B, K
        mlog = m.mask_head(feats.flatten(0, 1), classes.flatten())  # B*K, 2g, 2g
        H, W = size
        hw = torch.stack((torch.full_like(queries[:, 0], H), torch.full_like(queries[:, 0], W)), dim=-1)
        box = _to_pixels(picked, hw).flatten(0, 1)  # B*K, 4
        prob = paste_masks(mlog.float().sigmoid(), box, H, W)  # B*K, H, W
        fg = prob >= MASK_THRESHOLD
        mean = (prob * fg).flatten(1).sum(1) / fg.flatten(1).sum(1).clamp(min=1)
        return fg.view(B, K, H, W), scores * mean.view(B, K)


class DETRExport(nn.Module):
    """DETR inference: one detection per query (best real class), boxes in original pixels."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, orig_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, boxes = self.model.heads(self.model._decode(images, None)[-1])  # B, Q, C+1 / B, Q, 4
        scores, labels = logits.float().softmax(-1)[..., :-1].max(-1)  # B, Q
        xyxy = box_convert(boxes.float(), "cxcywh", "xyxy").clamp(0, 1)
        h0, w0 = orig_sizes[:, 0, None].float(), orig_sizes[:, 1, None].float()
        return xyxy * torch.stack((w0, h0, w0, h0), dim=-1), scores, labels


def wrap(model: nn.Module) -> tuple[nn.Module, str]:
    """The export wrapper of a model and its kind ("boxer2d", "detr" or "classifier")."""
    from boxer.models.boxer2d import BoxeR2D
    from boxer.models.classifiers import ImageClassifier
    from boxer.models.detr.model import DETR

    if isinstance(model, BoxeR2D):
        return BoxeRExport(model).eval(), "boxer2d"
    if isinstance(model, DETR):
        return DETRExport(model).eval(), "detr"
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

    config = ckpt.load_checkpoint(checkpoint, with_state=False).config
    if config.get("task") == "classification":
        from boxer.classification.runner import load_classifier

        return load_classifier(checkpoint)
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
