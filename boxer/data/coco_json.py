"""Reading COCO annotation files with errors that name the file and the position of the problem."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from boxer.errors import BoxerError

__all__ = ["load_coco_json"]


def load_coco_json(path: str | os.PathLike) -> dict[str, Any]:
    """Parses a COCO JSON file; only the syntax and the top-level type are checked here.

    Raises:
        BoxerError: the file is missing, unreadable, not JSON, or not a JSON object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BoxerError(f"{path}: annotation file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BoxerError(f"{path}: cannot read the annotation file ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BoxerError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except (ValueError, RecursionError) as err:  # a number too long to convert, nesting too deep
        raise BoxerError(f"{path}: invalid JSON ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise BoxerError(
            f"{path}: expected a JSON object with images/annotations/categories, got {type(data).__name__}"
        )
    return data
