"""Backbone pretraining by Fashion-MNIST classification (`boxer pretrain-backbone`).

What an ImageNet-pretrained ResNet is to COCO, this is to FashionScenes on a CPU: the backbone learns
to tell the ten Fashion-MNIST classes apart on items rendered in the scenes' style
(`boxer.data.fashion_items`), then BoxeR-2D starts from it (`model.pretrained_backbone=PATH`).
Only Fashion-MNIST's train split is used (minus a held-out validation part); FashionScenes val is
drawn from its test split, so the detector's evaluation stays unseen. `exclude_classes` drops the
items of some classes from training and validation (the classifier then has one output per kept
class), so that an open-vocabulary check's held-out classes are unseen by the backbone too
(docs/open_vocabulary.md).

Pretraining is a task of the engine's `Trainer` (boxer/engine/trainer.py) that writes no run
directory: no checkpoints, only the weights file and its report. The weights are written as
safetensors under the backbone's loadable names (torchvision's, for
the ResNets), with BatchNorm statistics, which the detector then freezes.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from boxer.engine.precision import autocast
from boxer.engine.pretrain_config import PretrainConfig
from boxer.engine.task import LoopConfig, Task
from boxer.engine.trainer import Trainer
from boxer.errors import BoxerError


class _Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int = 10) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.backbone(x)[-1]  # B, C, h, w
        return self.fc(feat.mean(dim=(2, 3)))  # B, classes


def export_names(backbone: nn.Module) -> dict[str, Tensor]:
    """The backbone's state dict, as its `pretrained=PATH` loader reads it (the ResNets carry
    torchvision's names themselves)."""
    return {k: v.detach().clone().contiguous() for k, v in backbone.state_dict().items()}


@torch.no_grad()
def _accuracy(model: nn.Module, loader, amp: str) -> float:
    model.eval()
    right = seen = 0
    for images, labels in loader:
        with autocast("cpu", amp):
            logits = model(images)  # B, classes
        right += int((logits.argmax(-1) == labels).sum())
        seen += len(labels)
    model.train()
    return 100.0 * right / max(seen, 1)


def _without_classes(images: Tensor, labels: Tensor, exclude: str) -> tuple[Tensor, Tensor, int]:
    """Items `[N, 28, 28]` and labels `[N]` without the `exclude` classes, labels renumbered 0..K-1
    over the kept classes; and K."""
    from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, class_indices

    dropped = class_indices(exclude) if exclude else []
    kept = [i for i in range(len(FASHION_MNIST_CLASSES)) if i not in dropped]
    if not dropped:
        return images, labels, len(kept)
    remap = torch.full((len(FASHION_MNIST_CLASSES),), -1, dtype=torch.long)
    remap[kept] = torch.arange(len(kept))
    keep = remap[labels.long()] >= 0
    return images[keep], remap[labels.long()[keep]], len(kept)


class ItemBatches:
    """Shuffled `(images [B, 3, S, S], labels [B])` batches of rendered items, last incomplete batch
    dropped; order and renderings of epoch `e` are seeded by the seed and `e`."""

    def __init__(self, items, *, batch_size: int, workers: int, seed: int) -> None:
        self.items, self.batch_size, self.workers, self.seed = items, batch_size, workers, seed

    def batches_per_epoch(self) -> int:
        return len(self.items) // self.batch_size

    def epoch(self, epoch: int, start: int = 0):
        self.items.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            self.items, batch_size=self.batch_size, shuffle=True, drop_last=True,
            generator=torch.Generator().manual_seed(self.seed * 1000 + epoch),
            num_workers=self.workers, persistent_workers=self.workers > 0,
        )  # fmt: skip
        return itertools.islice(loader, start, None)


class PretrainTask(Task):
    """Classifies rendered Fashion-MNIST items with `backbone` + a linear head (cross-entropy with
    label smoothing 0.1, AdamW, warm-up over 3% of the steps then cosine to 1%)."""

    tensorboard = False

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, train_set, num_classes: int) -> None:
        self.cfg, self.train_set = cfg, train_set
        self.model = _Classifier(backbone, num_classes)
        self.recent: deque[float] = deque(maxlen=20)  # the last steps' losses, for the report

    def train_batches(self, info) -> ItemBatches:
        cfg = self.cfg
        return ItemBatches(self.train_set, batch_size=cfg.batch_size, workers=cfg.workers, seed=cfg.seed)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        from boxer.engine.optim import weight_decay_groups

        return torch.optim.AdamW(weight_decay_groups(model, self.cfg.weight_decay), lr=self.cfg.lr)

    def build_schedule(self, optimizer, *, iters_per_epoch: int, total_iters: int):
        from boxer.engine.optim import CosineSchedule

        warmup = max(total_iters // 33, 1)
        return CosineSchedule(optimizer, total_steps=total_iters, warmup_steps=warmup, min_ratio=0.01)

    def losses(self, net: nn.Module, batch, device: torch.device) -> dict[str, Tensor]:
        images, labels = batch
        logits = net(images.to(device))  # B, classes
        return {"loss": F.cross_entropy(logits.float(), labels.to(device), label_smoothing=0.1)}

    def after_step(self, trainer, values: dict[str, float]) -> None:
        self.recent.append(values["loss"])


def _loop_config(cfg: PretrainConfig, steps_per_epoch: int) -> LoopConfig:
    """`epochs` (a fraction allowed) as a step count; the time cap counts training time."""
    total = max(int(cfg.epochs * steps_per_epoch), 1)
    return LoopConfig(
        max_iters=total, max_minutes=cfg.max_minutes, clock="training", amp=cfg.amp, device="cpu",
        eval_every=0, progress=cfg.progress,
    )  # fmt: skip


def pretrain_backbone(cfg: PretrainConfig) -> dict[str, Any]:
    """Trains the classifier, writes the backbone weights and a report; returns the report."""

    from boxer.data.fashion_items import FashionItems
    from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, class_indices, load_fashion_mnist
    from boxer.models.backbones import BACKBONES, create_backbone

    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise BoxerError(f"--out {out}: the weights file must end in .safetensors")
    if cfg.backbone not in BACKBONES and not cfg.backbone.startswith("timm:"):
        raise BoxerError(
            f"--backbone: unknown backbone {cfg.backbone!r}; registered: {', '.join(BACKBONES.names())}"
        )
    if cfg.amp not in ("bf16", "none"):
        raise BoxerError(f"--amp: expected bf16 or none, got {cfg.amp!r}")
    if cfg.epochs <= 0 or cfg.batch_size < 1 or cfg.size < 16:
        raise BoxerError("pretrain: need epochs > 0, batch_size >= 1 and size >= 16")
    torch.manual_seed(cfg.seed)
    images, labels = load_fashion_mnist("train", cfg.fashion_root)  # 60000, 28, 28
    images, labels, num_classes = _without_classes(images, labels, cfg.exclude_classes)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(cfg.seed))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    train_set = FashionItems(images[train_idx], labels[train_idx], size=cfg.size, seed=cfg.seed)
    val_set = FashionItems(images[val_idx], labels[val_idx], size=cfg.size, seed=cfg.seed + 1, augment=False)
    try:
        backbone = create_backbone(
            cfg.backbone, frozen_bn=False, **({"pretrained": cfg.init} if cfg.init else {})
        )
    except TypeError as err:
        raise BoxerError(
            f"--backbone {cfg.backbone}: cannot be built with trainable BatchNorm ({err})"
        ) from None
    task = PretrainTask(cfg, backbone, train_set, num_classes)
    trainer = Trainer(task, _loop_config(cfg, len(train_set) // cfg.batch_size), run_dir=None)
    trainer.fit()
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=256, num_workers=cfg.workers)
    val_top1 = _accuracy(task.model, val_loader, cfg.amp)
    steps = trainer.state.iteration
    report = {
        "backbone": cfg.backbone,
        "steps": steps,
        "images_seen": steps * cfg.batch_size,
        "train_seconds": round(trainer.state.train_seconds, 1),
        "final_loss": round(sum(task.recent) / max(len(task.recent), 1), 4),
        "val_top1": round(val_top1, 2),
        "val_items": len(val_set),
        "excluded_classes": [FASHION_MNIST_CLASSES[i] for i in class_indices(cfg.exclude_classes)]
        if cfg.exclude_classes
        else [],
        "config": asdict(cfg),
    }
    _write(out, backbone, report, val_top1)
    return report


def _write(out: Path, backbone: nn.Module, report: dict[str, Any], val_top1: float) -> None:
    """The backbone weights and the JSON report beside them, each written atomically."""
    from safetensors.torch import save

    from boxer.data.io import atomic_write_bytes

    metadata = {"backbone": report["backbone"], "val_top1": f"{val_top1:.2f}"}
    atomic_write_bytes(out, save(export_names(backbone), metadata=metadata))
    atomic_write_bytes(out.with_suffix(".json"), (json.dumps(report, indent=2) + "\n").encode())
