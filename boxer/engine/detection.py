"""Detection as a task of the `Trainer` (boxer/engine/trainer.py): what `boxer train` runs.

The model is a detector of the protocol in docs/CONTRACTS.md (`forward(images, pad_mask, targets)
-> dict` of weighted losses with `loss` their sum); batches come from `TrainLoader` (order and
augmentation seeded by seed, epoch and index, so resume is exact); the optimiser and schedule are
those of the BoxeR-2D recipe (boxer/engine/optim.py); evaluation is COCO AP (`evaluate_fn`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from boxer.engine.config import TrainConfig
from boxer.engine.distributed import DistInfo
from boxer.engine.evaluate import batch_to_device
from boxer.engine.loader import TrainLoader
from boxer.engine.optim import build_optimizer, build_schedule
from boxer.engine.task import LoopConfig, Task
from boxer.engine.trainer import Trainer


def loop_config(cfg: TrainConfig) -> LoopConfig:
    """The trainer's settings of a detection config (its time cap counts the whole run)."""
    names = LoopConfig.__dataclass_fields__.keys() - {"clock"}
    return LoopConfig(**{name: getattr(cfg, name) for name in names}, clock="run")


class DetectionTask(Task):
    """Trains a detector on a COCO-style dataset.

    Args:
        cfg: the resolved config.
        model: the detector (unwrapped).
        train_set: the training dataset.
        collate_fn: batch builder returning `DetectionBatch(images, pad_mask, targets)`.
        evaluate_fn: `evaluate_fn(model) -> metrics` (all processes), or None.
        meta: extra JSON-serialisable keys saved in every checkpoint's config (cat_ids, class_names...).
        figure_fn: `figure_fn(model) -> RGB uint8 array [H, W, 3] or None`, added to TensorBoard as
            `val/box_attention` after each evaluation (main process; `boxer.viz.tensorboard`).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        train_set,
        *,
        collate_fn: Callable,
        evaluate_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        meta: dict[str, Any] | None = None,
        figure_fn: Callable[[nn.Module], Any] | None = None,
    ) -> None:
        self.cfg, self.model, self.train_set = cfg, model, train_set
        self.collate_fn, self.evaluate_fn, self.figure_fn = collate_fn, evaluate_fn, figure_fn
        self.meta = dict(meta or {})

    def train_batches(self, info: DistInfo) -> TrainLoader:
        cfg = self.cfg
        return TrainLoader(
            self.train_set, batch_size=cfg.batch_size, collate_fn=self.collate_fn, info=info,
            seed=cfg.seed, workers=cfg.workers, drop_last=cfg.drop_last,
        )  # fmt: skip

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(model, self.cfg)

    def build_schedule(self, optimizer, *, iters_per_epoch: int, total_iters: int):
        return build_schedule(optimizer, self.cfg, iters_per_epoch=iters_per_epoch, total_iters=total_iters)

    def losses(self, net: nn.Module, batch: Any, device: torch.device) -> dict[str, Tensor]:
        images, pad_mask, targets = batch_to_device(batch, device)
        return net(images, pad_mask, targets)

    def describe(self, batch: Any) -> str:
        targets = batch[2] if isinstance(batch, tuple) else batch.targets
        return f"image ids {[int(t['image_id']) for t in targets]}"

    def evaluate(self, model: nn.Module) -> dict[str, float] | None:
        return self.evaluate_fn(model) if self.evaluate_fn is not None else None

    def checkpoint_config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), **self.meta}

    def after_epoch(self, trainer: Trainer, record: dict[str, Any], metrics: dict[str, float]) -> None:
        """The `figure_fn` picture in TensorBoard after an evaluation; a failure costs the picture only."""
        logger = trainer.logger
        if not metrics or self.figure_fn is None or not trainer.info.is_main or not logger.tensorboard:
            return
        try:
            image = self.figure_fn(trainer.model)
        except Exception as err:  # noqa: BLE001  (a picture must not stop training)
            logger.info(f"TensorBoard attention picture skipped: {type(err).__name__}: {err}")
            return
        if image is not None:
            logger.image("val/box_attention", image, trainer.state.iteration)


def detection_trainer(
    cfg: TrainConfig,
    model: nn.Module,
    train_set,
    *,
    collate_fn: Callable,
    run_dir: str | Path,
    info: DistInfo | None = None,
    evaluate_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    meta: dict[str, Any] | None = None,
    figure_fn: Callable[[nn.Module], Any] | None = None,
) -> Trainer:
    """The `Trainer` of a `DetectionTask` (arguments as there), checkpointing into `run_dir`."""
    task = DetectionTask(
        cfg, model, train_set, collate_fn=collate_fn, evaluate_fn=evaluate_fn, meta=meta, figure_fn=figure_fn
    )
    return Trainer(task, loop_config(cfg), run_dir=run_dir, info=info)
