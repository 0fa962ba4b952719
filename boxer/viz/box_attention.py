"""BoxeR-2D box-attention of one image: detections with their query index, and per detection (or
per encoder token) the windows, sampling points and weights of every layer, head and level, in
the pixels of the image file.

The forward pass is the one of `BoxeR2D.predict` (`boxer/models/boxer2d/model.py`), kept apart so
that the query index of each detection survives; an `AttentionRecorder` hooks the encoder's and
decoder's attention modules meanwhile. Decoder cross-attention of mask models is also called for
the mask features of the chosen queries: only the first (all-query) call is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from boxer.models.boxer2d.postprocess import postprocess
from boxer.viz.geometry import cxcywh_to_xyxy_pixels, scale_xy, token_at_pixel
from boxer.viz.recorder import AttentionRecord, AttentionRecorder


@dataclass
class AttentionData:
    """Box-attention of a set of queries over some layers, in pixels of the original image.

    Arrays (N queries, Y layers, H heads, L levels, m grid side):
        reference: [N, Y, 4] reference window xyxy (a decoder query keeps its proposal in every layer).
        windows: [N, Y, H, L, 4] transformed windows xyxy.
        points: [N, Y, H, L, m, m, 2] sampling points (x, y).
        weights: [N, Y, H, L, m, m] attention weights (sum 1 over levels and cells per head).
        layers: the layer index of each of the Y rows.
    """

    reference: np.ndarray
    windows: np.ndarray
    points: np.ndarray
    weights: np.ndarray
    layers: list[int]

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays under names `<prefix>_<field>` (for `np.savez`)."""
        names = ("reference", "windows", "points", "weights")
        out = {f"{prefix}_{n}": getattr(self, n).astype(np.float32) for n in names}
        out[f"{prefix}_layers"] = np.asarray(self.layers, dtype=np.int64)
        return out


@dataclass
class ImageAttention:
    """Everything `boxer viz attention` draws for one image.

    Attributes:
        detections: `boxes` Tensor[K, 4] xyxy pixels, `scores`, `labels`, `queries` (and `masks`), best first.
        decoder: the top detections' queries over the decoder layers.
        encoder: the tokens under the chosen pixel (one per query level), or None.
        strides: the input stride of each feature level.
        tokens: flattened index of the encoder token under the pixel on each level (row n of
            `encoder` is the token of level n).
    """

    detections: dict[str, Tensor]
    decoder: AttentionData
    encoder: AttentionData | None
    strides: list[int]
    tokens: list[int] = field(default_factory=list)
    pixel: tuple[float, float] | None = None  # the encoder's query pixel (file pixels)


def is_box_attention_model(model: nn.Module) -> bool:
    """True for BoxeR-2D: box- or instance-attention modules, and the detector's `_run` and `head`."""
    from boxer.layers.box_attention import WindowAttentionBase

    has_attention = any(isinstance(m, WindowAttentionBase) for m in model.modules())
    return has_attention and hasattr(model, "_run") and hasattr(model, "head")


def layer_records(recorder: AttentionRecorder, part: str) -> list[AttentionRecord]:
    """The first call of each attention module whose name contains `.<part>.`, in layer order."""
    return [calls[0] for name, calls in recorder.records.items() if f".{part}." in f".{name}" and calls]


def gather(records: list[AttentionRecord], layers: list[int], queries: Tensor, size: tuple[int, int]):
    """`AttentionData` of image 0's `queries: LongTensor[N]` over `layers`; size (h0, w0) of the file."""
    h0, w0 = size
    pick = [records[i] for i in layers]
    ref = torch.stack([cxcywh_to_xyxy_pixels(r.ref_windows[0, queries], w0, h0) for r in pick], 1)
    win = torch.stack([cxcywh_to_xyxy_pixels(r.boxes[0, queries], w0, h0) for r in pick], 1)
    pts = torch.stack([scale_xy(r.points[0, queries], w0, h0) for r in pick], 1)
    wts = torch.stack([r.weights[0, queries] for r in pick], 1)
    return AttentionData(ref.numpy(), win.numpy(), pts.numpy(), wts.numpy(), list(layers))


def select_layers(count: int, wanted: list[int] | None, what: str) -> list[int]:
    """Layer indices to draw (all when `wanted` is None); negative indices count from the end."""
    if not wanted:
        return list(range(count))
    out = []
    for i in wanted:
        if not -count <= i < count:
            from boxer.errors import BoxerError

            raise BoxerError(f"--layers: {what} has {count} layers (0..{count - 1}), got {i}")
        out.append(i % count)
    return out


@torch.no_grad()
def predict_with_queries(model: nn.Module, images: Tensor, pad_mask: Tensor, targets: list[dict]) -> dict:
    """`BoxeR2D.predict` for one image, keeping each detection's query index; sorted by score, one
    detection per query (its best class: a query's attention is the same whatever the class)."""
    out = model._run(images, pad_mask, dense=False)
    logits, boxes = model.head(out.states[-1].t3, out.layer_windows(-1))  # the last layer's reference
    dets = postprocess(logits, boxes, targets, num_select=model.num_select, clip=not model.with_masks)
    if model.with_masks:
        model._predict_masks(out, logits, dets, targets)
    det = dets[0]
    order = det["scores"].argsort(descending=True).tolist()
    best, seen = [], set()
    for i in order:
        query = int(det["queries"][i])
        if query not in seen:
            seen.add(query)
            best.append(i)
    return {k: v[best].cpu() for k, v in det.items()}


def image_attention(
    model: nn.Module,
    images: Tensor,
    pad_mask: Tensor,
    target: dict,
    *,
    detections: int = 3,
    layers: list[int] | None = None,
    pixel: tuple[float, float] | str | None = None,
) -> ImageAttention:
    """Runs `model` on one image (a batch of 1) and gathers its box-attention.

    Args:
        model: a BoxeR-2D detector in eval mode.
        images, pad_mask: Tensor[1, 3, H, W] and Tensor[1, H, W] (the eval preprocessing).
        target: `orig_size` (h0, w0) of the file.
        detections: the top-N detections whose queries are drawn.
        layers: decoder (and encoder) layers, None = all.
        pixel: (x, y) in file pixels whose encoder tokens are gathered, "centre" for the best
            detection's centre, or None.
    """
    with AttentionRecorder(model) as rec:
        det = predict_with_queries(model, images, pad_mask, [target])
    size = tuple(int(v) for v in target["orig_size"])
    dec = layer_records(rec, "decoder")
    queries = det["queries"][:detections]
    decoder = gather(dec, select_layers(len(dec), layers, "the decoder"), queries, size)
    shapes = dec[0].spatial_shapes
    strides = [2 ** round(math.log2(images.shape[-1] / w_l)) for _, w_l in shapes]  # 8, 16, 32, 64
    encoder, tokens = None, []
    if pixel == "centre":
        x0, y0, x1, y1 = det["boxes"][0].tolist()
        pixel = ((x0 + x1) / 2, (y0 + y1) / 2)
    if pixel is not None:
        enc = layer_records(rec, "encoder")
        ratios = enc[0].valid_ratios[0] if enc[0].valid_ratios is not None else torch.ones(len(shapes), 2)
        tokens = token_at_pixel(*pixel, width=size[1], height=size[0], shapes=shapes, ratios=ratios)
        encoder = gather(enc, select_layers(len(enc), layers, "the encoder"), torch.tensor(tokens), size)
    return ImageAttention(det, decoder, encoder, strides, tokens, pixel)
