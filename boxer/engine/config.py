"""Training configuration: one flat dataclass, Python presets, `--set key=value` overrides.

The recipe defaults follow the BoxeR-2D training recipe (BoxeR, Nguyen et al., CVPR 2022; docs/training.md,
"Configuration": AdamW, lr 2e-4, backbone 2e-5, `linear_box` 0.1x, wd 1e-4, eps 1e-9, clip 0.1). Presets
live in `configs/*.py` as a module-level `CONFIG = dict(...)`; precedence is defaults < preset < CLI flags <
`--set`. Model keywords are set with a `model.` prefix (`--set model.num_queries=100`) and passed to
`boxer.create_model` unchanged. The resolved config is saved as JSON in the run directory.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import runpy
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxer.errors import BoxerError

AMP_MODES = ("auto", "bf16", "fp16", "none")
AMP_ALIASES = {"off": "none"}  # deprecated spelling of `boxer train-cls` configs and checkpoints
AMP_HELP = "mixed precision: auto (bf16 on GPU, float32 on CPU), bf16, fp16 or none (float32)"
DEVICES = ("auto", "cpu", "cuda")
STEP_UNITS = ("epoch", "iter")


@dataclass
class TrainConfig:
    """Everything a training run needs; every field can be set with `--set key=value`."""

    # what to train, on what
    model: str = "boxer2d_r18_lite"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    train_images: str = ""
    train_ann: str = ""
    val_images: str = ""
    val_ann: str = ""
    image_size: int = 0  # eval short side; 0 = auto (800, or the native size of small images)
    max_size: int = 0  # longest side; 0 = 1333 * image_size / 800
    augment: bool = True
    # length and batching (batch_size is per process; global = batch_size * world * accum_steps)
    epochs: int = 12
    max_iters: int = 0
    max_minutes: float = 0.0
    time_schedule: bool = False
    batch_size: int = 2
    accum_steps: int = 1
    drop_last: bool = True
    workers: int = 2
    # optimiser
    lr: float = 2e-4
    lr_backbone: float = 2e-5
    weight_decay: float = 1e-4
    adam_eps: float = 1e-9
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    clip_max_norm: float = 0.1
    # schedule: warmup in iterations, then x lr_gamma at each of lr_steps (in lr_step_unit)
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    lr_steps: list[int] = field(default_factory=list)
    lr_step_unit: str = "epoch"
    lr_gamma: float = 0.1
    # precision, devices, reproducibility
    amp: str = "auto"
    device: str = "auto"
    seed: int = 42
    deterministic: bool = False
    num_threads: int = 0
    find_unused_parameters: bool = False
    # evaluation, checkpoints, logging
    eval_every: int = 1
    best_metric: str = "bbox/AP"
    ckpt_every_iters: int = 0
    log_every: int = 10
    progress: bool = True
    progress_seconds: float = 30.0  # between plain progress lines when stderr is not a terminal
    out: str = ""
    init: str = ""

    def validate(self) -> TrainConfig:
        """Checks value ranges; raises BoxerError naming the field."""
        for name, kind in field_types().items():
            if kind is float and not math.isfinite(getattr(self, name)):
                raise BoxerError(f"config: {name} must be a finite number, got {getattr(self, name)}")
        positive = ("epochs", "batch_size", "accum_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise BoxerError(f"config: {name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "image_size",
            "max_size",
            "workers",
            "max_iters",
            "warmup_iters",
            "eval_every",
            "ckpt_every_iters",
            "num_threads",
        ):
            if getattr(self, name) < 0:
                raise BoxerError(f"config: {name} must be >= 0, got {getattr(self, name)}")
        for name in (
            "lr",
            "lr_backbone",
            "weight_decay",
            "adam_eps",
            "clip_max_norm",
            "max_minutes",
        ):
            if getattr(self, name) < 0:
                raise BoxerError(f"config: {name} must be >= 0, got {getattr(self, name)}")
        self.amp = amp_mode(self.amp)
        _check_choice("amp", self.amp, AMP_MODES)
        _check_choice("device", self.device, DEVICES)
        _check_choice("lr_step_unit", self.lr_step_unit, STEP_UNITS)
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise BoxerError(f"config: adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        if sorted(self.lr_steps) != list(self.lr_steps) or any(s < 1 for s in self.lr_steps):
            raise BoxerError(f"config: lr_steps must be increasing positive integers, got {self.lr_steps}")
        if not self.best_metric.startswith(("bbox/", "segm/")):
            raise BoxerError(
                f"config: best_metric must be bbox/<stat> or segm/<stat>, got {self.best_metric!r}"
            )
        if self.log_every < 1:
            raise BoxerError(f"config: log_every must be >= 1, got {self.log_every}")
        if not self.progress_seconds > 0:
            raise BoxerError(f"config: progress_seconds must be > 0, got {self.progress_seconds}")
        if not 0 < self.warmup_factor <= 1:
            raise BoxerError(f"config: warmup_factor must be in (0, 1], got {self.warmup_factor}")
        if not self.lr_gamma > 0:
            raise BoxerError(f"config: lr_gamma must be > 0, got {self.lr_gamma}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path, **extra: Any) -> None:
        """Writes the resolved config (plus `extra` keys) as JSON, atomically."""
        from boxer.engine.checkpoint import atomic_write_text

        atomic_write_text(Path(path), json.dumps({**self.to_dict(), **extra}, indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config", strict: bool = True) -> TrainConfig:
        """Builds a config from a dict; unknown keys raise (or are ignored with strict=False)."""
        cfg = cls()
        apply_overrides(cfg, values, source=source, strict=strict)
        return cfg


def amp_mode(text: str) -> str:
    """An `amp` value in its one spelling: `auto|bf16|fp16|none`; the deprecated `off` reads `none`."""
    return AMP_ALIASES.get(text, text)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BoxerError(f"config: {name} must be one of {', '.join(choices)}, got {value!r}")


def field_types() -> dict[str, Any]:
    """Field name -> resolved type annotation of TrainConfig."""
    return typing.get_type_hints(TrainConfig)


def did_you_mean(key: str, names: list[str]) -> str:
    """The hint of every "unknown key" error: the closest name, else the known names."""
    close = difflib.get_close_matches(key, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"


def _unknown_key(key: str, source: str) -> BoxerError:
    return BoxerError(f"{source}: unknown config key {key!r}{did_you_mean(key, list(field_types()))}")


def coerce(key: str, value: Any, source: str = "config") -> Any:
    """Converts `value` (a Python value, or a string from the command line) to the type of `key`."""
    types = field_types()
    if key not in types:
        raise _unknown_key(key, source)
    kind = types[key]
    origin = typing.get_origin(kind) or kind
    if isinstance(value, str) and origin is not str:
        value = _parse_literal(key, value, source, origin)
    if origin is bool:
        if isinstance(value, bool):
            return value
    elif origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif origin is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item,) = typing.get_args(kind)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, (list, tuple)) and all(_is_a(v, item) for v in value):
            return [item(v) for v in value]
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    expected = getattr(kind, "__name__", str(kind))
    raise BoxerError(f"{source}: {key} expects {expected}, got {value!r}")


def _is_a(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _parse_literal(key: str, text: str, source: str, origin: Any) -> Any:
    if origin is bool and text.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return text.lower() in ("true", "yes", "1", "on")
    if origin is list and text and text[0] not in "[(":
        text = f"[{text}]"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise BoxerError(f"{source}: {key}={text!r} is not a valid value") from None


def parse_model_value(text: str) -> Any:
    """The value of `--set model.key=value`, which has no declared type: a Python literal,
    true/false/none/null (any case), else the text itself. `boxer train-cls --set` parses the same."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(cfg: TrainConfig, values: dict[str, Any], *, source: str, strict: bool = True) -> None:
    """Sets each key of `values` on `cfg` with type checks; `model.<kw>` keys go to model_kwargs."""
    types = field_types()
    for key, value in values.items():
        if key.startswith("model."):
            name = key[len("model.") :]
            if not name.isidentifier():
                raise BoxerError(f"{source}: {key!r} is not a valid model keyword")
            cfg.model_kwargs[name] = parse_model_value(value) if isinstance(value, str) else value
        elif key in types:
            setattr(cfg, key, coerce(key, value, source))
        elif key == MOVED_TO_MODEL:
            _legacy_linear_box(cfg, value, source)
        elif strict:
            raise _unknown_key(key, source)


# Configs and run directories written before the model owned its parameter groups carry this key at
# the top level; the factor is now the BoxeR-2D keyword `model.lr_linear_box_mult` (default 0.1).
MOVED_TO_MODEL = "lr_linear_box_mult"


def _legacy_linear_box(cfg: TrainConfig, value: Any, source: str) -> None:
    """The old top-level key: its default (0.1) is dropped, another value moves to model_kwargs."""
    try:
        mult = float(value)
    except (TypeError, ValueError):
        raise BoxerError(f"{source}: lr_linear_box_mult expects a number, got {value!r}") from None
    if mult != 0.1:
        cfg.model_kwargs.setdefault(MOVED_TO_MODEL, mult)


def parse_set_args(items: list[str] | None) -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`; raises on a missing '='. Every `--set` uses it."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BoxerError(f"--set: expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def preset_dirs() -> list[Path]:
    """Where preset names are looked up: ./configs, then the repository's configs/."""
    repo = Path(__file__).resolve().parents[2] / "configs"
    return [Path.cwd() / "configs", repo]


def load_preset(name_or_path: str) -> dict[str, Any]:
    """Reads `CONFIG` from a preset: a path to a .py file, or a name under configs/."""
    path = Path(name_or_path)
    if not path.is_file():
        stem = path.name[:-3] if path.name.endswith(".py") else path.name
        found = [d / f"{stem}.py" for d in preset_dirs() if (d / f"{stem}.py").is_file()]
        if not found:
            known = sorted({p.stem for d in preset_dirs() if d.is_dir() for p in d.glob("*.py")})
            raise BoxerError(f"--config: no preset {name_or_path!r}; known: {', '.join(known) or 'none'}")
        path = found[0]
    namespace = runpy.run_path(str(path))
    config = namespace.get("CONFIG")
    if not isinstance(config, dict):
        raise BoxerError(f"{path}: a preset must define CONFIG = dict(...)")
    return config


def resolve_config(
    preset: str | None = None, flags: dict[str, Any] | None = None, sets: list[str] | None = None
) -> TrainConfig:
    """defaults < preset < CLI flags (None = not given) < `--set key=value`; then validated."""
    cfg = TrainConfig()
    if preset:
        preset_values = dict(load_preset(preset))
        model_kw = preset_values.pop("model_kwargs", {}) or {}
        apply_overrides(cfg, preset_values, source=f"preset {preset}")
        apply_overrides(cfg, {f"model.{k}": v for k, v in model_kw.items()}, source=f"preset {preset}")
    apply_overrides(cfg, {k: v for k, v in (flags or {}).items() if v is not None}, source="flags")
    apply_overrides(cfg, parse_set_args(sets), source="--set")
    return cfg.validate()


def coerce_like(default: Any, key: str, text: str) -> Any:
    """A `--set` value of a key whose default is `default`, as that default's type (str keys keep the
    text; a key whose default is None takes the parsed literal)."""
    if isinstance(default, str):
        return text
    value = parse_model_value(text)
    if default is None or type(value) is type(default):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise BoxerError(f"--set: {key} expects {type(default).__name__}, got {text!r}")
