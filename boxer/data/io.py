"""Atomic file and folder writing: a crash or an error never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from boxer.errors import BoxerError

__all__ = ["atomic_dir", "atomic_write_bytes", "atomic_write_json", "require_writable_folder"]


def require_writable_folder(folder: str | os.PathLike) -> None:
    """Checks, leaving no trace, that `folder` is, or can be made as, a folder this process can write in.

    Raises:
        BoxerError: `"<folder>: <why not>"`: it or the nearest existing folder above it is a file, or
            that folder refuses a new file.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BoxerError(f"{folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".boxer-write-test-", dir=existing)
    except OSError as err:
        raise BoxerError(f"{folder}: cannot write in {existing} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to a temporary file next to `path`, then renames it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> None:
    """Serialises `obj` as JSON (deterministically: insertion order, no NaN) and writes it atomically."""
    text = json.dumps(obj, indent=indent, separators=(",", ":") if indent is None else None, allow_nan=False)
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary folder that replaces `out` only when the block finishes without error.

    Args:
        out: the final folder; it must not exist (or be empty) unless `overwrite` is set.
        overwrite: replace an existing `out` (the old one is removed after the swap).

    Raises:
        BoxerError: `out` exists, is not empty, and `overwrite` is not set; or it cannot be written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BoxerError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BoxerError(f"{out}: folder exists and is not empty (pass --overwrite to replace it)")
    require_writable_folder(out.parent if out.exists() else out)  # the temporary folder goes next to out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as err:
        raise BoxerError(f"{out}: cannot create it ({err.strerror or err})") from None
    os.chmod(tmp, 0o755)  # mkdtemp creates 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.is_dir():
        old = out.parent / f"{tmp.name}.old"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
