"""Classification metrics: top-k accuracy and a whole-split evaluation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from boxer.engine.precision import autocast


def topk_correct(logits: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose label is among the top-k logits, per k (k capped at the classes)."""
    k_max = min(max(ks), logits.shape[-1])
    top = logits.topk(k_max, dim=-1).indices  # B, k_max
    hits = top == labels[:, None]
    return {k: int(hits[:, : min(k, k_max)].any(dim=-1).sum()) for k in ks}


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, amp: str = "none"
) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (percent) of `model` over `batches`.

    `amp` is a precision mode of `boxer.engine.precision` (`auto|bf16|fp16|none`)."""
    was_training = model.training
    model.eval()
    total, loss, correct = 0, 0.0, {1: 0, 5: 0}
    for inputs, labels in batches:
        with autocast(inputs.device, amp):
            logits = model(inputs).float()
        labels = labels.to(logits.device)
        loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        for k, c in topk_correct(logits, labels).items():
            correct[k] += c
        total += labels.numel()
    model.train(was_training)
    n = max(total, 1)
    return {"loss": loss / n, "top1": 100.0 * correct[1] / n, "top5": 100.0 * correct[5] / n, "count": total}
