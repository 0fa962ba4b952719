"""A small name -> factory registry, shared by models, backbones and token mixers.

Factories register themselves with a decorator when their module is imported; packages import
their modules explicitly (no directory scanning). Duplicate names raise.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any


class Registry:
    """Maps user-facing names to factories.

    Args:
        kind: what the registry holds ("model", "mixer", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, fn: Callable[..., Any] | None = None, *, name: str | None = None):
        """Decorator: registers `fn` under `name` (default: the function's name)."""

        def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
            key = name or f.__name__
            if key in self._factories:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._factories[key] = f
            return f

        return wrap(fn) if fn is not None else wrap

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._factories:
            known = ", ".join(sorted(self._factories)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {known}")
        return self._factories[name]

    def create(self, name: str, /, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._factories if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._factories
