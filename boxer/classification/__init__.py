"""Image classification: data splits, batch augmentation, the training loop, top-k metrics.

`train_classifier(ClassifyConfig(model="bot_fm", epochs=5))` trains and reports test top-1/top-5;
`evaluate_classifier("RUN/best")` re-evaluates a checkpoint. The CLI is `boxer train-cls` and
`boxer eval-cls`.
"""

from __future__ import annotations

from boxer.classification.config import ClassifyConfig
from boxer.classification.runner import evaluate_classifier, load_classifier, train_classifier

__all__ = ["ClassifyConfig", "evaluate_classifier", "load_classifier", "train_classifier"]
