"""The training engine: config, optimiser/schedule, checkpoints, distributed, loop, evaluation.

Importing `boxer.engine` is cheap (no torch); the pieces load on first use, so the CLI can decide
the allocator setting (`boxer.engine.allocator`) before torch is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "boxer.engine.config",
    "resolve_config": "boxer.engine.config",
    "Trainer": "boxer.engine.trainer",
    "TrainState": "boxer.engine.trainer",
    "NonFiniteLoss": "boxer.engine.trainer",
    "save_checkpoint": "boxer.engine.checkpoint",
    "load_checkpoint": "boxer.engine.checkpoint",
    "evaluate_detector": "boxer.engine.evaluate",
    "init_distributed": "boxer.engine.distributed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'boxer.engine' has no attribute {name!r}")
