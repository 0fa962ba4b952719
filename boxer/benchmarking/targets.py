"""What `boxer bench` can measure: a registered model (classifier or detector), a backbone, or a
token mixer alone. Each becomes a `Target`: a module plus a function that builds its input at a batch
size and runs it once.

Names: `NAME` = a registered model (`boxer models`); `backbone:NAME` = a backbone of
`boxer.models.backbones`; `mixer:NAME` = a token mixer at (C, H, W) = (`mixer_dim`, `mixer_size`,
`mixer_size`). Classifiers run `model(x)`; detectors run `model.predict(images, pad_mask, targets)`
(the inference path, post-processing included) on unpadded square images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from boxer.errors import BoxerError


@dataclass
class Target:
    """A module to benchmark and how to run it at a batch size."""

    name: str
    kind: str  # "classifier", "detector", "backbone" or "mixer"
    module: nn.Module
    make_call: Callable[[int], Callable[[], Any]]  # batch size -> a zero-argument call
    input_desc: str


def _first_conv_channels(module: nn.Module, default: int = 3) -> int:
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else default


def _images(batch: int, chans: int, size: int, device: torch.device) -> Tensor:
    return torch.randn(batch, chans, size, size, device=device)


def _call_on(module: nn.Module, x: Tensor) -> Callable[[], Any]:
    return lambda: module(x)


def mixer_target(name: str, *, dim: int, size: int, num_heads: int, device: torch.device) -> Target:
    from boxer.layers.mixers import create_mixer

    mixer = create_mixer(name, dim, num_heads=num_heads, feat_size=(size, size)).to(device).eval()
    return Target(
        name=f"mixer:{name}",
        kind="mixer",
        module=mixer,
        make_call=lambda b: _call_on(mixer, _images(b, dim, size, device)),
        input_desc=f"{dim}x{size}x{size}",
    )


def backbone_target(name: str, *, image_size: int, device: torch.device) -> Target:
    from boxer.models.backbones import create_backbone

    try:
        net = create_backbone(name).to(device).eval()
    except KeyError as err:
        raise BoxerError(f"--models: {err.args[0]}") from None
    chans = _first_conv_channels(net)
    return Target(
        name=f"backbone:{name}",
        kind="backbone",
        module=net,
        make_call=lambda b: _call_on(net, _images(b, chans, image_size, device)),
        input_desc=f"{chans}x{image_size}x{image_size}",
    )


def _detector_call(model: nn.Module, batch: int, size: int, device: torch.device) -> Callable[[], Any]:
    images = _images(batch, 3, size, device)
    pad_mask = torch.zeros(batch, size, size, dtype=torch.bool, device=device)
    hw = torch.tensor([size, size])
    targets = [{"image_id": i, "size": hw, "orig_size": hw} for i in range(batch)]
    return lambda: model.predict(images, pad_mask, targets)


def model_target(name: str, *, image_size: int, num_classes: int, device: torch.device) -> Target:
    from boxer.models import MODELS
    from boxer.models.classifiers import is_classifier

    if name not in MODELS:
        raise BoxerError(f"--models: unknown model {name!r}; registered: {', '.join(MODELS.names())}")
    if is_classifier(name):
        model = MODELS.create(name).to(device).eval()
        chans = model.in_chans
        return Target(
            name=name,
            kind="classifier",
            module=model,
            make_call=lambda b: _call_on(model, _images(b, chans, image_size, device)),
            input_desc=f"{chans}x{image_size}x{image_size}",
        )
    model = MODELS.create(name, num_classes=num_classes).to(device).eval()
    if not hasattr(model, "predict"):
        raise BoxerError(f"--models: {name} is neither a classifier nor a detector")
    return Target(
        name=name,
        kind="detector",
        module=model,
        make_call=lambda b: _detector_call(model, b, image_size, device),
        input_desc=f"3x{image_size}x{image_size}",
    )


def build_target(spec: str, **kw: Any) -> Target:
    """`NAME`, `backbone:NAME` or `mixer:NAME` -> a Target (see the module docstring)."""
    device = kw["device"]
    if spec.startswith("mixer:"):
        return mixer_target(
            spec[len("mixer:") :],
            dim=kw["mixer_dim"],
            size=kw["mixer_size"],
            num_heads=kw["mixer_heads"],
            device=device,
        )
    if spec.startswith("backbone:"):
        return backbone_target(spec[len("backbone:") :], image_size=kw["image_size"], device=device)
    return model_target(spec, image_size=kw["image_size"], num_classes=kw["num_classes"], device=device)
