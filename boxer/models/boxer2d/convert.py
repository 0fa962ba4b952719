"""`boxer convert --from official`: an official BoxeR-2D file -> a boxer checkpoint directory.

Reads the official file with `torch.load(weights_only=True)` (tensors and plain containers only):
a periodic `*.ckpt` (a dict whose `model` entry is the state dict, with the training `config`) or a
`*_final.pth` (the state dict itself, keys maybe prefixed `module.`). Reads the architecture from
the keys (`official.py` next to this file), checks every tensor against the boxer model's state dict
(built on the meta device: no memory, no initialisation), and writes `DIR/model.safetensors` and
`DIR/config.json` in the format `boxer eval|predict --checkpoint DIR` load (docs/CONTRACTS.md,
"Checkpoints and runs"). Test-time sizes are the official ones (shorter side 800, longer <= 1333),
float32 inference (`amp: none`), as for the official README numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from boxer.data.coco_categories import COCO_CAT_IDS, COCO_NAMES
from boxer.data.io import atomic_write_bytes
from boxer.engine.checkpoint import CONFIG, WEIGHTS, atomic_write_text
from boxer.engine.config import TrainConfig
from boxer.errors import BoxerError
from boxer.models.boxer2d import official as O
from boxer.models.boxer2d.official import OfficialLayout

RELEASED_RESIDUAL_MODE = "v2"  # the one released file, "BoxeR-R101-5x (v2)"
CLASS_MODES = ("coco80", "raw")


def read_official_file(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """The state dict of an official `.ckpt` / `.pth` file (no `module.` prefix) and its config, if any."""
    path = Path(path)
    if not path.is_file():
        raise BoxerError(f"{path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any refusal of the safe unpickler is a bad file
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise BoxerError(
            f"{path}: not readable with torch.load(weights_only=True) ({reason}); if you trust the file, "
            "save its state dict alone (the 'model' entry of a .ckpt) with torch.save and convert that"
        ) from None
    config = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # the .ckpt form
        config = obj.get("config") if isinstance(obj.get("config"), dict) else None
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise BoxerError(f"{path}: expected a state dict or a dict with a 'model' state dict")
    bad = next((k for k, v in obj.items() if not isinstance(v, Tensor)), None)
    if bad is not None:
        raise BoxerError(f"{path}: entry {bad!r} is a {type(obj[bad]).__name__}, not a tensor")
    return O.strip_module_prefix(obj), config


def residual_mode_of(config: dict[str, Any] | None) -> str | None:
    """`model_config.boxer2d.transformer.params.residual_mode` of an official training config."""
    node: Any = config
    for key in ("model_config", "boxer2d", "transformer", "params", "residual_mode"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if node in ("v1", "v2") else None


def convert_official(
    path: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    residual_mode: str | None = None,
    classes: str = "coco80",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Converts an official BoxeR-2D file into the checkpoint directory `out`; returns its config.

    Args:
        path: the official `.ckpt` or `.pth` file.
        out: the checkpoint directory to write (`model.safetensors`, `config.json`).
        model: the boxer variant (default: the one the keys describe, e.g. `boxer2d_r101_mask`).
        residual_mode: mask-feature residual; default the file's training config, else "v2".
        classes: "coco80" keeps the class rows of the 80 COCO category ids (a 91-row head, labels
            0..79, cat_ids the COCO ids); "raw" keeps every row (label = the official class index,
            cat_ids 0..C-1).
        overwrite: replace `model.safetensors` / `config.json` already in `out`.
    """
    out = _check_out(Path(out), overwrite)
    state, file_config = read_official_file(path)
    try:
        layout = O.read_layout(state)
        name = model or layout.model_name
        mode, mode_source = _residual_mode(residual_mode, file_config)
        kwargs = {"residual_mode": mode} if layout.with_masks else {}
        weights, source = O.to_boxer(state)
        expected = _expected_shapes(name, layout, kwargs)
        O.check_fits(weights, source, expected, name)
    except BoxerError as err:
        raise BoxerError(f"{path}: {err}") from None
    cat_ids, names = _classes(classes, layout.num_classes, path)
    if classes == "coco80":
        weights = O.select_class_rows(weights, COCO_CAT_IDS)
    config = TrainConfig(model=name, model_kwargs=kwargs, image_size=800, max_size=1333, amp="none")
    meta = {
        "num_classes": len(cat_ids),
        "cat_ids": cat_ids,
        "class_names": names,
        "with_masks": layout.with_masks,
        "converted_from": {
            "file": str(Path(path).resolve()),
            "format": "official BoxeR-2D (github.com/kienduynguyen/BoxeR)",
            "residual_mode": f"{mode} ({mode_source})" if layout.with_masks else "n/a (no masks)",
            "classes": classes,
        },
    }
    _write(out, weights, {**config.to_dict(), **meta})
    return {**config.to_dict(), **meta}


def _check_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise BoxerError(f"--out: {out} is a file; a checkpoint is a directory")
    existing = [n for n in (WEIGHTS, CONFIG) if (out / n).exists()]
    if existing and not overwrite:
        raise BoxerError(f"--out: {out / existing[0]} exists; pass --overwrite to replace it")
    return out


def _residual_mode(flag: str | None, config: dict[str, Any] | None) -> tuple[str, str]:
    if flag is not None:
        if flag not in ("v1", "v2"):
            raise BoxerError(f"--residual-mode: expected v1 or v2, got {flag!r}")
        return flag, "--residual-mode"
    from_file = residual_mode_of(config)
    if from_file:
        return from_file, "the file's training config"
    return RELEASED_RESIDUAL_MODE, "default: the released R101-5x file is v2"


def _expected_shapes(name: str, layout: OfficialLayout, kwargs: dict) -> dict[str, torch.Size]:
    """The state dict shapes of boxer model `name`, built on the meta device."""
    from boxer.engine.runner import build_model

    if not name.startswith("boxer2d"):
        raise BoxerError(
            f"--model: {name} is not a BoxeR-2D variant (boxer2d_r50[_mask], boxer2d_r101[_mask])"
        )
    with torch.device("meta"):
        net = build_model(name, num_classes=layout.num_classes, model_kwargs=kwargs)
    if layout.with_masks and not net.with_masks:
        raise BoxerError(
            f"{O.MASK_PREFIX}*: a mask checkpoint (instance-attention decoder) cannot run as {name}, "
            f"a detection model; use {name}_mask"
        )
    if net.with_masks and not layout.with_masks:
        raise BoxerError(
            f"{O.MASK_PREFIX}*: missing; a detection checkpoint cannot run as {name}, a mask model"
        )
    return {k: v.shape for k, v in net.state_dict().items()}


def _classes(mode: str, num_classes: int, path: str | Path) -> tuple[list[int], list[str]]:
    """cat_ids and class names of the converted head."""
    if mode not in CLASS_MODES:
        raise BoxerError(f"--classes: expected one of {', '.join(CLASS_MODES)}, got {mode!r}")
    if mode == "raw":
        coco = dict(zip(COCO_CAT_IDS, COCO_NAMES))
        return list(range(num_classes)), [coco.get(i, f"class_{i}") for i in range(num_classes)]
    if num_classes <= max(COCO_CAT_IDS):
        raise BoxerError(
            f"{path}: {O.CLASS_KEY}: {num_classes} rows, too few for the COCO category ids (up to "
            f"{max(COCO_CAT_IDS)}); convert with --classes raw"
        )
    return list(COCO_CAT_IDS), list(COCO_NAMES)


def _write(out: Path, weights: dict[str, Tensor], config: dict[str, Any]) -> None:
    """Writes the weights, then the config (each atomically: a temporary name, then a rename)."""
    atomic_write_bytes(out / WEIGHTS, safetensors_bytes(weights, metadata={"format": "pt"}))
    atomic_write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
