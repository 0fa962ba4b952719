"""Image classification: data splits, batch augmentation, the task the engine's Trainer runs, top-k metrics.

`train_classifier(ClassifyConfig(model="bot_fm", epochs=5))` trains and reports test top-1/top-5;
`evaluate_classifier("RUN/best")` re-evaluates a checkpoint. The CLI is `boxer train-cls` and
`boxer eval-cls`.
"""

from __future__ import annotations

from typing import Any

from boxer.classification.config import ClassifyConfig

__all__ = ["ClassifyConfig", "evaluate_classifier", "load_classifier", "train_classifier"]


def __getattr__(name: str) -> Any:
    """The runner's entry points, imported on first use: `boxer train-cls --help` needs no torch."""
    if name in ("evaluate_classifier", "load_classifier", "train_classifier"):
        from boxer.classification import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
