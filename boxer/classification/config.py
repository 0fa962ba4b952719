"""The classification training config: every knob of `boxer train-cls`, with defaults.

Defaults are the Fashion-MNIST recipe of `benchmarks/fashion_mnist.py`: AdamW (lr 1.5e-3, batch 64,
weight decay 0.05 on weights, none on norms/biases/position tables), linear warm-up then cosine decay
per step, label smoothing 0.1, batch augmentation (translate +-2 px, horizontal flip), channels-last
tensors, 5,000 training images held out for validation. `max_minutes` caps the training time (the
training epochs only, not validation): the cosine then follows the larger of the step fraction and
the time fraction, so a capped run still anneals to the end of its schedule before it stops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from boxer.engine.config import (
    AMP_MODES,
    amp_mode,
    coerce_like,
    did_you_mean,
    load_preset,
    parse_model_value,
    parse_set_args,
)
from boxer.errors import BoxerError


@dataclass
class ClassifyConfig:
    """Training settings (see the module docstring for the recipe)."""

    model: str = "resnet_fm"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = "fashion-mnist"
    data_root: str | None = None
    out: str | None = None
    epochs: int = 10
    max_minutes: float | None = None
    batch_size: int = 64
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.3
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    translate: int = 2
    flip: bool = True
    erase: float = 0.0
    amp: str = "none"
    channels_last: bool = True
    val_size: int = 5000
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    image_size: int | None = None
    device: str = "cpu"
    threads: int | None = None
    progress: bool = True
    init: str | None = None  # weights that fit are loaded before training (`--init`); not on resume

    def validate(self) -> None:
        """Raises BoxerError naming the first bad field."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if value <= 0:
                raise BoxerError(f"--{name.replace('_', '-')}: must be positive, got {value}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise BoxerError(f"--max-minutes: must be positive, got {self.max_minutes}")
        self.amp = amp_mode(self.amp)
        if self.amp not in AMP_MODES:
            raise BoxerError(f"--amp: expected one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if not 0 <= self.label_smoothing < 1:
            raise BoxerError(f"label_smoothing: must lie in [0, 1), got {self.label_smoothing}")
        if self.weight_decay < 0 or self.warmup_epochs < 0 or self.translate < 0 or not 0 <= self.erase <= 1:
            raise BoxerError("weight_decay, warmup_epochs, translate must be >= 0 and erase in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClassifyConfig:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise BoxerError(f"config: unknown keys {', '.join(unknown)}{did_you_mean(unknown[0], known)}")
        return cls(**values)


def resolve_classify_config(
    preset: str | None = None, flags: dict[str, Any] | None = None, sets: list[str] | None = None
) -> ClassifyConfig:
    """defaults < preset < CLI flags (None = not given) < `--set key=value`, as `boxer train`.

    `--set` takes a config key (`epochs=3`) or a model keyword (`model.mixer=local`); a key that is
    not a config key is a model keyword too (`mixer=local`), as `train-cls` always read it.
    """
    values: dict[str, Any] = dict(load_preset(preset)) if preset else {}
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    model_kwargs = dict(values.pop("model_kwargs", None) or {})
    names = {f.name for f in fields(ClassifyConfig)} - {"model_kwargs"}
    for key, text in parse_set_args(sets).items():
        if key in names:
            values[key] = coerce_like(getattr(ClassifyConfig(), key), key, text)
        else:
            model_kwargs[key.removeprefix("model.")] = parse_model_value(text)
    return ClassifyConfig.from_dict({**values, "model_kwargs": model_kwargs})
