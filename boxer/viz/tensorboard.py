"""The box-attention picture `boxer train` adds to TensorBoard after each evaluation.

One fixed val image (the first), its best detection, the decoder's last layer: the grid of
`attention_figures.attention_grid` rendered to an RGB array (`val/box_attention` in TensorBoard).
The image shown is the dataset's own (normalised, resized) tensor, de-normalised and scaled back to
the file's size, so that windows in file pixels land where they belong.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from boxer.viz.attention_figures import attention_grid
from boxer.viz.box_attention import image_attention, is_box_attention_model

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]  # boxer.data.coco.IMAGENET_MEAN
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


__all__ = ["attention_image", "figure_array", "is_box_attention_model"]


def _display(image: torch.Tensor, orig_size) -> np.ndarray:
    """Tensor[3, h, w] normalised -> uint8 [h0, w0, 3]."""
    rgb = (image.cpu() * STD + MEAN).clamp(0, 1)[None]
    h0, w0 = (int(v) for v in orig_size)
    rgb = F.interpolate(rgb, size=(h0, w0), mode="bilinear", align_corners=False)[0]
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def figure_array(fig) -> np.ndarray:
    """A matplotlib figure as an RGB uint8 array [H, W, 3] (the figure is closed)."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    out = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return out


@torch.no_grad()
def attention_image(model: nn.Module, dataset, *, index: int = 0, class_names=None) -> np.ndarray | None:
    """The last decoder layer's box-attention for the best detection of `dataset[index]`, or None
    when `model` has no box-attention. The model's train/eval mode is restored."""
    if not is_box_attention_model(model) or len(dataset) == 0:
        return None
    image, target = dataset[index]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        pad = torch.zeros(1, *image.shape[-2:], dtype=torch.bool, device=device)
        att = image_attention(model, image[None].to(device), pad, target, detections=1, layers=[-1])
    finally:
        model.train(was_training)
    det = att.detections
    label = int(det["labels"][0])
    name = class_names[label] if class_names and label < len(class_names) else str(label)
    title = f"val image {target.get('image_id', index)}: best detection {name} {float(det['scores'][0]):.2f}"
    fig = attention_grid(_display(image, target["orig_size"]), att.decoder, 0, strides=att.strides,
                         title=title, box=det["boxes"][0].numpy())  # fmt: skip
    return figure_array(fig)
