"""Image classification as a task of the `Trainer` (boxer/engine/trainer.py): what `boxer train-cls` runs.

AdamW over `weight_decay_groups` with a warm-up/cosine schedule that follows steps or training time
(boxer/engine/optim.py), batch augmentation (`augment.py`), cross-entropy with label smoothing,
validation after every epoch (`best` = highest val top-1) and one metrics line per epoch. The
trainer counts only training time against `max_minutes`, over all resumes.

Batches are cut from the in-memory split: the order of epoch `e` is a permutation seeded by
(seed, e) and the augmentation of batch `i` draws from a generator seeded by (seed, e, i), so a run
resumed at any iteration sees exactly the batches of one that never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from boxer.classification.augment import Augment
from boxer.classification.config import ClassifyConfig
from boxer.classification.data import (
    FASHION_MEAN,
    FASHION_STD,
    ClassificationData,
    Split,
    iterate_batches,
    num_batches,
    to_model_input,
)
from boxer.classification.metrics import evaluate
from boxer.engine.distributed import DistInfo
from boxer.engine.optim import CosineSchedule, weight_decay_groups
from boxer.engine.rng import sample_seed
from boxer.engine.task import LoopConfig, Task
from boxer.engine.trainer import Trainer

BEST_METRIC = "val_top1"


class SplitBatches:
    """Shuffled `(images uint8 [B, H, W], labels [B], epoch, index)` batches of a split, last
    incomplete batch dropped; epoch `e` can start at any batch."""

    def __init__(self, split: Split, *, batch_size: int, seed: int) -> None:
        self.split, self.batch_size, self.seed = split, batch_size, seed

    def batches_per_epoch(self) -> int:
        return num_batches(self.split, self.batch_size, drop_last=True)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor, int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.split), generator=generator)
        for index in range(start, self.batches_per_epoch()):
            idx = order[index * self.batch_size : (index + 1) * self.batch_size]
            yield self.split.images[idx], self.split.labels[idx], epoch, index


class ClassificationTask(Task):
    """Trains an image classifier on the train split, validating on val.

    Args:
        model: an image classifier with `in_chans` / `img_size` attributes.
        data: the splits.
        cfg: the configuration.
        meta: extra JSON-able fields stored in every checkpoint's config.json.
    """

    tensorboard = False

    def __init__(self, model: nn.Module, data: ClassificationData, cfg: ClassifyConfig, meta: dict) -> None:
        self.data, self.cfg = data, cfg
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(memory_format=self.memory_format)
        self.in_chans = getattr(model, "in_chans", 1)
        self.img_size = cfg.image_size or getattr(model, "img_size", None)
        background = -FASHION_MEAN / FASHION_STD  # a black pixel: what padding and erasing fill with
        self.augment = Augment(pad=cfg.translate, flip=cfg.flip, erase=cfg.erase, background=background)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.config_json = {"task": "classification", **cfg.to_dict(), **meta}

    def prepare(self, images: Tensor, device: torch.device) -> Tensor:
        x = to_model_input(images, in_chans=self.in_chans, img_size=self.img_size)
        return x.to(device).contiguous(memory_format=self.memory_format)

    def train_batches(self, info: DistInfo) -> SplitBatches:
        return SplitBatches(self.data.train, batch_size=self.cfg.batch_size, seed=self.cfg.seed)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(weight_decay_groups(model, self.cfg.weight_decay), lr=self.cfg.lr)

    def build_schedule(self, optimizer, *, iters_per_epoch: int, total_iters: int) -> CosineSchedule:
        warmup = max(1, round(self.cfg.warmup_epochs * iters_per_epoch))
        return CosineSchedule(
            optimizer, total_steps=total_iters, warmup_steps=warmup, min_ratio=self.cfg.min_lr_ratio
        )

    def losses(self, net: nn.Module, batch: Any, device: torch.device) -> dict[str, Tensor]:
        images, labels, epoch, index = batch
        generator = torch.Generator().manual_seed(sample_seed(self.cfg.seed, epoch, index))
        inputs = self.augment(self.prepare(images, device), generator)
        inputs = inputs.contiguous(memory_format=self.memory_format)
        return {"loss": self.criterion(net(inputs).float(), labels.to(device))}

    def describe(self, batch: Any) -> str:
        return f"training batch {batch[3]} of epoch {batch[2] + 1}"

    def evaluate_split(self, model: nn.Module, split: Split) -> dict[str, float]:
        device = next(model.parameters()).device
        batches = iterate_batches(
            split, batch_size=max(self.cfg.batch_size, 256), prepare=lambda x: self.prepare(x, device)
        )
        return evaluate(model, batches, amp=self.cfg.amp)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        val = self.evaluate_split(model, self.data.val)
        return {"val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"]}

    def checkpoint_config(self) -> dict[str, Any]:
        return self.config_json

    def epoch_record(self, trainer: Trainer, record: dict[str, Any], metrics: dict[str, float]) -> dict:
        st = trainer.state
        return {
            "epoch": record["epoch"],
            "train_loss": record.get("train/loss", float("nan")),
            **metrics,
            "lr": record["lr"],
            "train_wall_s": st.train_seconds,
            "train_cpu_s": st.train_cpu_seconds,
            "images_seen": st.iteration * self.cfg.batch_size,
        }

    def after_epoch(self, trainer: Trainer, record: dict[str, Any], metrics: dict[str, float]) -> None:
        trainer.logger.info(
            f"epoch {record['epoch']}/{self.cfg.epochs}: train loss {record['train_loss']:.4f}, val top-1 "
            f"{metrics['val_top1']:.2f}% top-5 {metrics['val_top5']:.2f}% "
            f"({record['train_wall_s']:.0f}s training so far)"
        )


def loop_config(cfg: ClassifyConfig) -> LoopConfig:
    """The trainer's settings of a classification config: validation and a `best` every epoch,
    the time cap counting training time only."""
    return LoopConfig(
        epochs=cfg.epochs, max_minutes=cfg.max_minutes or 0.0, clock="training", amp=cfg.amp,
        device=cfg.device, eval_every=1, best_metric=BEST_METRIC, progress=cfg.progress,
    )  # fmt: skip


def classification_trainer(
    model: nn.Module, data: ClassificationData, cfg: ClassifyConfig, run_dir: str | Path, meta: dict
) -> Trainer:
    """The `Trainer` of a `ClassificationTask` (arguments as there), checkpointing into `run_dir`."""
    return Trainer(ClassificationTask(model, data, cfg, meta), loop_config(cfg), run_dir=run_dir)
