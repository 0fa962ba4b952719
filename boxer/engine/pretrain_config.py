"""The settings of a backbone pretraining run (`boxer pretrain-backbone`, boxer/engine/pretrain.py).

Torch-free, so the CLI can show its defaults in `--help` without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from boxer.engine.config import coerce_like, did_you_mean, load_preset, parse_set_args
from boxer.errors import BoxerError


@dataclass
class PretrainConfig:
    """A pretraining run.

    Attributes:
        backbone: a registered backbone built with `frozen_bn=False` (e.g. resnet18).
        out: the weights file to write (`.safetensors`); a JSON report goes next to it.
        size: rendered image side in pixels.
        epochs: passes over the training items (a fraction trains on the first part of one pass).
        max_minutes: stop training after this long, whatever `epochs` says (0 = no cap).
        batch_size: images per step.
        lr: peak AdamW learning rate (linear warm-up over 3% of the steps, then cosine to 1%; the
            cosine follows steps or `max_minutes`, whichever is further along).
        weight_decay: AdamW weight decay on weights (not on norms and biases).
        val_size: items held out of the train split for validation.
        workers: rendering worker processes.
        seed: item order, held-out split, renderings and initial weights.
        amp: "bf16" (autocast; about 1.8x faster for a ResNet-18 on this AVX-512 CPU) or "none".
        fashion_root: folder with the Fashion-MNIST IDX files (default: the usual search).
        progress: show a progress bar.
        exclude_classes: class names left out (comma-separated), e.g. "Bag,Ankle boot".
        init: weights the backbone starts from (its `pretrained=PATH` loader, e.g. an earlier
            pretraining's file); "" = random initialisation.
    """

    backbone: str = "resnet18"
    out: str = "backbone.safetensors"
    size: int = 64
    epochs: float = 1.0
    max_minutes: float = 0.0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    val_size: int = 2000
    workers: int = 1
    seed: int = 0
    amp: str = "bf16"
    fashion_root: str | None = None
    progress: bool = True
    exclude_classes: str = ""
    init: str = ""


def resolve_pretrain_config(
    preset: str | None = None, flags: dict[str, Any] | None = None, sets: list[str] | None = None
) -> PretrainConfig:
    """defaults < preset (CONFIG = dict of these keys) < CLI flags (None = not given) < `--set`."""
    values: dict[str, Any] = dict(load_preset(preset)) if preset else {}
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    defaults = PretrainConfig()
    names = [f.name for f in fields(PretrainConfig)]
    for key, text in parse_set_args(sets).items():
        values[key] = coerce_like(getattr(defaults, key, None), key, text)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise BoxerError(f"config: unknown keys {', '.join(unknown)}{did_you_mean(unknown[0], names)}")
    return PretrainConfig(**values)
