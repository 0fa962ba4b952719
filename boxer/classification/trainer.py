"""The classification training loop: AdamW + warm-up/cosine, batch augmentation, mixed precision
(optional, `boxer.engine.precision`; fp16 with a GradScaler on GPU), per-epoch validation, `last` /
`best` checkpoints through `boxer.engine.checkpoint`, one metrics line per epoch, and the test split
evaluated once at the end with the best-on-val weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from boxer.classification.augment import Augment
from boxer.classification.config import ClassifyConfig
from boxer.classification.data import ClassificationData, iterate_batches, num_batches, to_model_input
from boxer.classification.metrics import evaluate
from boxer.engine import checkpoint as ckpt
from boxer.engine.logging import RunLogger
from boxer.engine.optim import warmup_cosine, weight_decay_groups
from boxer.engine.precision import autocast

RESULTS = "results.json"


class ClassifierTrainer:
    """Trains `model` on `data` as configured; `fit()` returns the results dict.

    Args:
        model: an image classifier with `in_chans` / `img_size` attributes.
        data: the splits.
        cfg: the configuration.
        run_dir: where checkpoints, metrics.jsonl and results.json go.
        meta: extra JSON-able fields stored in every checkpoint's config.json.
    """

    def __init__(
        self,
        model: nn.Module,
        data: ClassificationData,
        cfg: ClassifyConfig,
        run_dir: Path,
        meta: dict[str, Any],
    ) -> None:
        self.model, self.data, self.cfg, self.run_dir = model, data, cfg, Path(run_dir)
        self.device = torch.device(cfg.device)
        self.model.to(self.device)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.in_chans = getattr(model, "in_chans", 1)
        self.img_size = cfg.image_size or getattr(model, "img_size", None)
        self.steps_per_epoch = num_batches(data.train, cfg.batch_size, drop_last=True)
        total = self.steps_per_epoch * cfg.epochs
        warmup = max(1, round(cfg.warmup_epochs * self.steps_per_epoch))
        self.budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
        self.time_fraction = 0.0  # share of the time budget spent (stays 0 without one)
        self.optimizer = torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr)
        fp16 = cfg.amp == "fp16" and self.device.type == "cuda"  # a no-op scaler otherwise
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        factor = warmup_cosine(total, warmup, cfg.min_lr_ratio)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: factor(step, self.time_fraction)
        )
        self.augment = Augment(pad=cfg.translate, flip=cfg.flip, erase=cfg.erase, background=_background())
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.config_json = {"task": "classification", **cfg.to_dict(), **meta}
        self.epoch, self.best_top1, self.train_wall, self.train_cpu = 0, -1.0, 0.0, 0.0
        self.steps, self.images_seen = 0, 0
        self.generator = torch.Generator().manual_seed(cfg.seed)

    # ---------------------------------------------------------------- inputs
    def prepare(self, images: Tensor) -> Tensor:
        x = to_model_input(images, in_chans=self.in_chans, img_size=self.img_size)
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def batches(self, split, *, train: bool = False):
        return iterate_batches(
            split,
            batch_size=self.cfg.batch_size if train else max(self.cfg.batch_size, 256),
            shuffle=train,
            generator=self.generator if train else None,
            drop_last=train,
            prepare=self.prepare,
        )

    # ---------------------------------------------------------------- loop
    @property
    def out_of_time(self) -> bool:
        return self.budget_s is not None and self.train_wall >= self.budget_s

    def train_epoch(self, logger: RunLogger) -> float:
        """One pass over the training split (cut short when the time budget runs out)."""
        self.model.train()
        total, count = 0.0, 0
        start = time.perf_counter()
        logger.start_epoch(self.epoch, self.cfg.epochs, self.steps_per_epoch, 0)
        for inputs, labels in self.batches(self.data.train, train=True):
            inputs = self.augment(inputs, self.generator).contiguous(memory_format=self.memory_format)
            with autocast(self.device, self.cfg.amp):
                loss = self.criterion(self.model(inputs).float(), labels.to(self.device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {self.epoch + 1}: non-finite training loss")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.steps, self.images_seen = self.steps + 1, self.images_seen + len(labels)
            if self.budget_s is not None:
                self.time_fraction = (self.train_wall + time.perf_counter() - start) / self.budget_s
            self.schedule.step()
            total, count = total + loss.item(), count + 1
            logger.step(loss.item(), self.optimizer.param_groups[0]["lr"])
            if self.time_fraction >= 1.0:
                break
        logger.end_epoch()
        return total / max(count, 1)

    def evaluate(self, split) -> dict[str, float]:
        return evaluate(self.model, self.batches(split), amp=self.cfg.amp)

    def fit(self, logger: RunLogger) -> dict[str, Any]:
        """Trains the remaining epochs, then evaluates the best checkpoint on the test split."""
        while self.epoch < self.cfg.epochs and not self.out_of_time:
            wall, cpu = time.perf_counter(), time.process_time()
            train_loss = self.train_epoch(logger)
            self.train_wall += time.perf_counter() - wall
            self.train_cpu += time.process_time() - cpu
            val = self.evaluate(self.data.val)
            self.epoch += 1
            record = {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "val_loss": val["loss"],
                "val_top1": val["top1"],
                "val_top5": val["top5"],
                "lr": self.optimizer.param_groups[0]["lr"],
                "train_wall_s": self.train_wall,
                "train_cpu_s": self.train_cpu,
                "images_seen": self.images_seen,
            }
            logger.epoch_line(record)
            logger.info(
                f"epoch {self.epoch}/{self.cfg.epochs}: train loss {train_loss:.4f}, val top-1 "
                f"{val['top1']:.2f}% top-5 {val['top5']:.2f}% ({self.train_wall:.0f}s training so far)"
            )
            self.save("last")
            if val["top1"] > self.best_top1:
                self.best_top1 = val["top1"]
                self.save("best")
        return self.finish(logger)

    def finish(self, logger: RunLogger) -> dict[str, Any]:
        best = ckpt.load_checkpoint(self.run_dir / "best", with_state=False)
        self.model.load_state_dict(best.weights)
        test = self.evaluate(self.data.test)
        results = {
            "model": self.config_json.get("model"),
            "epochs": self.epoch,
            "best_val_top1": self.best_top1,
            "test_top1": test["top1"],
            "test_top5": test["top5"],
            "test_loss": test["loss"],
            "test_count": test["count"],
            "train_wall_s": self.train_wall,
            "train_cpu_s": self.train_cpu,
            "steps": self.steps,
            "images_seen": self.images_seen,
            "stopped_by_time": self.out_of_time,
            "params": sum(p.numel() for p in self.model.parameters()),
            "threads": torch.get_num_threads(),
        }
        ckpt.atomic_write_text(self.run_dir / RESULTS, json.dumps(results, indent=2) + "\n")
        logger.info(
            f"test (best val epoch weights): top-1 {test['top1']:.2f}% top-5 {test['top5']:.2f}% "
            f"on {test['count']} images; training {self.train_wall:.0f}s wall, {self.train_cpu:.0f}s CPU"
        )
        return results

    # ---------------------------------------------------------------- checkpoints
    def save(self, name: str) -> None:
        state = {
            "epoch": self.epoch,
            "iteration": self.steps,
            "best_top1": self.best_top1,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "train_wall": self.train_wall,
            "train_cpu": self.train_cpu,
            "steps": self.steps,
            "images_seen": self.images_seen,
            "time_fraction": self.time_fraction,
        }
        ckpt.save_checkpoint(self.run_dir, name, model=self.model, state=state, config=self.config_json)

    def resume(self, path: str | Path) -> None:
        """Restores weights, optimiser, schedule, RNG and counters from a `last` checkpoint."""
        point = ckpt.load_checkpoint(path)
        self.model.load_state_dict(point.weights)
        state = point.state or {}
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["scheduler"])
            self.generator.set_state(state["generator"])
        self.epoch, self.best_top1 = int(state.get("epoch", 0)), float(state.get("best_top1", -1.0))
        self.train_wall, self.train_cpu = float(state.get("train_wall", 0)), float(state.get("train_cpu", 0))
        self.steps, self.images_seen = int(state.get("steps", 0)), int(state.get("images_seen", 0))
        self.time_fraction = float(state.get("time_fraction", 0.0))


def _background() -> float:
    """The normalised value of a black pixel (what padding and erasing fill with)."""
    from boxer.classification.data import FASHION_MEAN, FASHION_STD

    return -FASHION_MEAN / FASHION_STD
