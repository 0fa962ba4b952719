"""Checkpoints: safe to load, replaced atomically (docs/CONTRACTS.md, "Checkpoints and runs").

A checkpoint is a directory with `model.safetensors` (weights), `state.pt` (optimiser, scheduler,
scaler, RNG states, epoch/iteration; plain tensors and containers only, loaded with
`torch.load(weights_only=True)`) and `config.json` (resolved config, model name and keywords, the
dataset's cat_ids / class_names).

Atomic scheme: each save writes a fresh versioned directory `RUN/checkpoints/<name>-<iteration>`
(through a temporary name, then `os.rename`), then swaps the symlink `RUN/<name>` to it with
`os.replace`, and only then deletes older versions. A crash at any point leaves `RUN/<name>`
pointing at a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from boxer.errors import BoxerError

WEIGHTS = "model.safetensors"
STATE = "state.pt"
CONFIG = "config.json"
VERSIONS = "checkpoints"


def atomic_write_text(path: str | Path, text: str) -> None:
    """`text` (UTF-8) written atomically by `boxer.data.io.atomic_write_bytes`, the one atomic writer."""
    from boxer.data.io import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def state_dict_for_safetensors(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict on CPU, contiguous, with tensors that share storage cloned."""
    out, seen = {}, set()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        storage = tensor.untyped_storage()
        shared = storage.data_ptr() in seen or storage.nbytes() != tensor.nbytes
        seen.add(storage.data_ptr())
        out[key] = tensor.clone() if shared else tensor
    return out


# ---------------------------------------------------------------- save / load


def save_checkpoint(
    run_dir: str | Path, name: str, *, model: nn.Module, state: dict[str, Any], config: dict[str, Any]
) -> Path:
    """Writes checkpoint `name` ("last", "best") under `run_dir` atomically; returns its directory.

    Args:
        run_dir: the run directory; `run_dir/name` becomes a symlink to the new version.
        name: checkpoint name.
        model: the (unwrapped) model whose weights are saved.
        state: training state (tensors, numbers, strings, lists, dicts only).
        config: JSON-serialisable resolved config plus dataset metadata.
    """
    run_dir = Path(run_dir)
    versions = run_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    tmp = versions / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(state_dict_for_safetensors(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        torch.save(state, tmp / STATE)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:  # a failed save leaves no half-written directory behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = versions / f"{name}-{int(state.get('iteration', 0)):08d}-{uuid.uuid4().hex[:6]}"
    os.rename(tmp, final)
    _fsync_dir(versions)
    link_tmp = run_dir / f".{name}.{uuid.uuid4().hex[:8]}.lnk"
    os.symlink(os.path.relpath(final, run_dir), link_tmp)
    os.replace(link_tmp, run_dir / name)
    _fsync_dir(run_dir)
    _prune(run_dir, name, keep=final)
    return final


def _prune(run_dir: Path, name: str, keep: Path) -> None:
    """Removes older versions of `name` and leftover temporaries (never what a link points to)."""
    live = {(run_dir / n).resolve() for n in ("last", "best") if (run_dir / n).exists()}
    for path in (run_dir / VERSIONS).iterdir():
        stale_tmp = path.name.startswith(f".tmp-{name}-")
        old = path.name.startswith(f"{name}-") and path.resolve() != keep.resolve()
        if (stale_tmp or old) and path.resolve() not in live:
            shutil.rmtree(path, ignore_errors=True)
    for link in run_dir.glob(f".{name}.*.lnk"):
        link.unlink(missing_ok=True)


@dataclass
class Checkpoint:
    """A loaded checkpoint: weights, training state (None if absent) and config."""

    path: Path
    weights: dict[str, Tensor]
    state: dict[str, Any] | None
    config: dict[str, Any]


def checkpoint_dir(path: str | Path) -> Path:
    """Resolves a checkpoint path (a run directory means its `last`); raises if it is not one."""
    path = Path(path)
    if not path.exists():
        raise BoxerError(f"{path}: checkpoint not found (expected a directory such as RUN/last)")
    if path.is_dir() and not (path / WEIGHTS).exists() and (path / "last").exists():
        path = path / "last"
    path = path.resolve()
    if not path.is_dir():
        raise BoxerError(f"{path}: a checkpoint is a directory holding {WEIGHTS}, {CONFIG}")
    if not (path / WEIGHTS).is_file():
        raise BoxerError(f"{path}: no trained weights ({WEIGHTS} missing); train first or pass RUN/last")
    if not (path / CONFIG).is_file():
        raise BoxerError(f"{path}: {CONFIG} missing; cannot tell which model these weights belong to")
    return path


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a .safetensors file; a truncated or foreign file is a BoxerError naming it."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BoxerError(f"{path}: not a readable .safetensors file ({reason})") from None


def load_checkpoint(path: str | Path, *, with_state: bool = True) -> Checkpoint:
    """Loads a checkpoint directory without unpickling arbitrary objects."""
    path = checkpoint_dir(path)
    weights = read_safetensors(path / WEIGHTS)
    try:
        config = json.loads((path / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise BoxerError(f"{path / CONFIG}: unreadable checkpoint config ({err})") from None
    if not isinstance(config, dict):
        raise BoxerError(f"{path / CONFIG}: expected a JSON object, got {type(config).__name__}")
    state = None
    if with_state and (path / STATE).is_file():
        try:
            state = torch.load(path / STATE, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling refusal is a bad file
            raise BoxerError(f"{path / STATE}: unreadable training state ({err})") from None
    return Checkpoint(path=path, weights=weights, state=state, config=config)


def load_weights_file(path: str | Path) -> dict[str, Tensor]:
    """Weights from a checkpoint directory, a .safetensors file or a tensor-only .pth/.pt file."""
    path = Path(path)
    if path.is_dir() or path.is_symlink():
        return load_checkpoint(path, with_state=False).weights
    if not path.is_file():
        raise BoxerError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise BoxerError(f"{path}: not a tensor-only state dict ({err})") from None
    obj = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else obj
    if not isinstance(obj, dict):
        raise BoxerError(f"{path}: expected a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, Tensor)}


def describe_last(run_dir: str | Path) -> str:
    """What `run_dir/last` holds, for the message of an interrupted or failed run."""
    last = Path(run_dir) / "last"
    if not last.exists():
        return "nothing was saved yet (the first checkpoint comes after the first optimiser step)"
    parts = last.resolve().name.split("-")  # last-<iteration>-<id>
    iteration = (parts[1].lstrip("0") or "0") if len(parts) == 3 else "?"
    return f"{last} holds iteration {iteration}; continue with `boxer train --resume {last}`"


def load_matching(model: nn.Module, weights: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    """Loads every tensor whose name and shape fit `model`; returns (loaded, skipped descriptions)."""
    own = model.state_dict()
    fits = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    skipped = [
        f"{k} (shape {list(v.shape)} vs {list(own[k].shape)})" if k in own else f"{k} (not in model)"
        for k, v in weights.items()
        if k not in fits
    ]
    skipped += [f"{k} (not in checkpoint, left at init)" for k in own if k not in weights]
    model.load_state_dict(fits, strict=False)
    return sorted(fits), skipped


def load_model_weights(model: nn.Module, weights: dict[str, Tensor], path: str | Path, name: str) -> None:
    """Loads `weights` into `model` strictly: every tensor, no more; else a BoxerError naming `path`."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise BoxerError(
            f"{path}: weights do not match {name} ({len(missing)} missing, e.g. {missing[:2]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )


def init_from(model: nn.Module, path: str | Path, log=print) -> None:
    """`--init`: loads the tensors of `path` that fit `model` by name and shape; reports the rest."""
    loaded, skipped = load_matching(model, load_weights_file(path))
    if not loaded:
        raise BoxerError(f"--init {path}: no tensor matches this model by name and shape")
    log(f"init: loaded {len(loaded)} tensors from {path}; skipped {len(skipped)}")
    for item in skipped:
        log(f"  skipped {item}")
