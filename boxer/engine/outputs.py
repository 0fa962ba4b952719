"""Output paths checked before any work: writable, not a file where a folder is meant, never an input.

`boxer train --out` and `boxer eval --results` call these first, so that a bad output path is one
line at the start instead of a traceback after the work is done, and so that no command writes
into, or over, what it reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from boxer.data.io import require_writable_folder
from boxer.errors import BoxerError

# What `boxer train` writes into a run directory; a folder holding anything else is not a run.
RUN_FILES = {"config.json", "metrics.jsonl", "log.txt", "tb", "checkpoints", "last", "best"}


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_writable(path: str | Path, *, flag: str) -> None:
    """Raises unless `path` can be created: its nearest existing ancestor is a writable folder."""
    base = _nearest_existing(Path(path).absolute().parent)
    if not base.is_dir():
        raise BoxerError(f"{flag}: {path} lies under {base}, which is a file, not a folder")
    _require_writable(base, f"{flag}: {base} is not writable (needed for {path})")


def _require_writable(folder: Path, message: str) -> None:
    """`require_writable_folder` (a real probe: `os.access` says yes to root on read-only mounts)."""
    try:
        require_writable_folder(folder)
    except BoxerError:
        raise BoxerError(message) from None


def refuse_inputs(path: str | Path, inputs: Iterable[str | Path], *, flag: str) -> None:
    """Raises when `path` is one of `inputs` (files) or lies inside one of them (folders)."""
    target = Path(path).resolve()
    for item in inputs:
        if not item:
            continue
        source = Path(item).resolve()
        if target == source or (source.is_dir() and _is_within(target, source)):
            kind = "folder" if source.is_dir() else "file"
            raise BoxerError(f"{flag}: {path} would write into the input {kind} {item}; choose another path")


def check_run_dir(out: str | Path, *, inputs: Iterable[str | Path] = ()) -> None:
    """`boxer train --out`: a new folder, or one holding only an earlier run's files (no `last`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BoxerError(f"--out: {out} is a file; give a folder for the run")
    refuse_inputs(out, inputs, flag="--out")
    if out.is_dir():
        others = sorted(
            p.name for p in out.iterdir() if p.name not in RUN_FILES and not p.name.startswith(".")
        )
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise BoxerError(
                f"--out: {out} holds files that are not a boxer run ({shown}); give a new folder"
            )
        _require_writable(out, f"--out: {out} is not writable")
    else:
        check_writable(out, flag="--out")


def check_output_file(
    path: str | Path, *, flag: str, inputs: Iterable[str | Path] = (), overwrite: bool = False
) -> None:
    """An output file: not a folder, not an input, writable; an existing file only with `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise BoxerError(f"{flag}: {path} is a folder; give a file name")
    refuse_inputs(path, inputs, flag=flag)
    if path.exists() and not overwrite:
        raise BoxerError(f"{flag}: {path} exists; pass --overwrite to replace it")
    if path.exists() and not os.access(path, os.W_OK):
        raise BoxerError(f"{flag}: {path} is not writable")
    check_writable(path, flag=flag)
