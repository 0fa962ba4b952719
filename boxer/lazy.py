"""Lazy package exports (PEP 562): a package's public names load their module on first use.

`boxer.engine` and `boxer.data` use it so that importing them costs no torch import: the CLI answers
`--help` and sets the allocator (boxer/engine/allocator.py) before torch loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: `exports` maps a public name to the module defining it."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
