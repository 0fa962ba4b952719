"""A classification run's confusion matrix on the test split (`boxer viz run` of `boxer train-cls` runs).

The run's best checkpoint (else last) classifies the test split of its dataset, loaded and
preprocessed as `boxer eval-cls` does (`boxer/classification/runner.py`: `load_classifier`,
`load_classification_data` with the run's val size and seed, `to_model_input`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class ClassEval:
    """class_names: K names; confusion: [K, K] counts (rows: true class, columns: predicted); top1 in %."""

    class_names: list[str]
    confusion: np.ndarray
    top1: float


def confusion_counts(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> np.ndarray:
    """[K, K] counts of (true, predicted) pairs."""
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes).numpy()


@torch.no_grad()
def evaluate_classification_run(run: Path, *, limit: int | None = None, batch_size: int = 256) -> ClassEval:
    """The confusion matrix of the run's checkpoint on (the first `limit` images of) the test split."""
    from boxer.classification.data import iterate_batches, load_classification_data, to_model_input
    from boxer.classification.runner import load_classifier
    from boxer.viz.run_eval import run_checkpoint

    model, config = load_classifier(run_checkpoint(run))
    data = load_classification_data(config["data"], root=config.get("data_root"), val_size=config["val_size"],
                                    seed=config["seed"], limit_test=limit)  # fmt: skip
    size = config.get("image_size") or getattr(model, "img_size", None)
    k = len(data.class_names)
    counts = np.zeros((k, k), dtype=np.int64)
    for images, labels in iterate_batches(data.test, batch_size=batch_size):
        logits = model(to_model_input(images, in_chans=model.in_chans, img_size=size))
        counts += confusion_counts(labels, logits.argmax(-1), k)
    top1 = 100.0 * np.trace(counts) / max(counts.sum(), 1)
    return ClassEval(list(data.class_names), counts, float(top1))
