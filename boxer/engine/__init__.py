"""The training engine: config, optimiser/schedule, checkpoints, distributed, the task-agnostic
`Trainer` and its tasks (detection here), evaluation.

Importing `boxer.engine` is cheap (no torch); the pieces load on first use, so the CLI can decide
the allocator setting (`boxer.engine.allocator`) before torch is imported.
"""

from __future__ import annotations

from boxer.lazy import lazy_getattr

_EXPORTS = {
    "TrainConfig": "boxer.engine.config",
    "resolve_config": "boxer.engine.config",
    "Trainer": "boxer.engine.trainer",
    "TrainState": "boxer.engine.trainer",
    "LoopConfig": "boxer.engine.task",
    "Task": "boxer.engine.task",
    "DetectionTask": "boxer.engine.detection",
    "detection_trainer": "boxer.engine.detection",
    "NonFiniteLoss": "boxer.engine.stopping",
    "TrainingInterrupted": "boxer.engine.stopping",
    "save_checkpoint": "boxer.engine.checkpoint",
    "load_checkpoint": "boxer.engine.checkpoint",
    "evaluate_detector": "boxer.engine.evaluate",
    "init_distributed": "boxer.engine.distributed",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
