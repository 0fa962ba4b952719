"""What a task gives the `Trainer` (boxer/engine/trainer.py), and the loop's own settings.

The trainer owns the loop: gradient accumulation, mixed precision, DDP, the time cap and the
time-aware schedule, the non-finite-loss policy, exact resume, atomic checkpoints, logging and
progress. A *task* owns what is particular to one kind of training: the model, the training batches,
the optimiser and schedule, the loss of one batch, evaluation and what an epoch's metrics line
holds. Detection (`boxer.engine.detection`), classification (the classification package's
`task.py`) and backbone pretraining (`boxer.engine.pretrain`) are tasks; docs/training.md, "The Trainer and
tasks", shows how to add one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from boxer.engine.distributed import DistInfo
    from boxer.engine.trainer import Trainer

CLOCKS = ("run", "training")


@dataclass
class LoopConfig:
    """How long and how the trainer runs; every task maps its own config onto these fields.

    Attributes:
        epochs: passes over the training batches.
        max_iters: stop after this many optimiser steps (0 = `epochs` decides).
        max_minutes: time cap (0 = none); the epoch it falls in ends early, then evaluates.
        clock: what the cap counts: "run" = wall time since `fit()` began (evaluation included),
            "training" = time in training epochs only, summed over resumes.
        accum_steps: micro-batches per optimiser step.
        amp: precision mode of `boxer.engine.precision` (`auto|bf16|fp16|none`).
        device: "auto", "cpu" or "cuda" (single process; torchrun sets it per rank).
        clip_max_norm: gradient-norm clip (0 = none).
        find_unused_parameters: passed to DDP.
        eval_every: evaluate every this many epochs (and after the last one); 0 = never.
        best_metric: the metric whose maximum is kept as the `best` checkpoint.
        ckpt_every_iters: also write `last` every this many optimiser steps (0 = at epoch ends).
        log_every: TensorBoard scalars every this many optimiser steps.
        progress: show progress.
        progress_seconds: between plain progress lines when stderr is not a terminal.
    """

    epochs: int = 1
    max_iters: int = 0
    max_minutes: float = 0.0
    clock: str = "run"
    accum_steps: int = 1
    amp: str = "none"
    device: str = "auto"
    clip_max_norm: float = 0.0
    find_unused_parameters: bool = False
    eval_every: int = 1
    best_metric: str = ""
    ckpt_every_iters: int = 0
    log_every: int = 10
    progress: bool = True
    progress_seconds: float = 30.0


class Batches(Protocol):
    """The training batches of a task: a fixed count per epoch, an epoch startable at any batch.

    Exact resume needs `epoch(e, start)` to yield the batches `start, start + 1, ...` of epoch `e`
    exactly as a run that never stopped saw them (order and augmentation from the seed, epoch and
    position only; `boxer.engine.loader.TrainLoader` is the detection one).
    """

    def batches_per_epoch(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Iterable[Any]: ...


class Schedule(Protocol):
    """A learning-rate schedule: `advance` once per optimiser step, with the share of the time cap
    spent so far (0 without a cap), so that a time-capped run can still reach its late rates."""

    def advance(self, time_fraction: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Task:
    """Base class of tasks: override what differs (the defaults suit a task without evaluation).

    Attributes:
        model: the model to train (unwrapped; the trainer moves it to its device and wraps it in DDP).
        tensorboard: whether the run writes TensorBoard events to `RUN/tb`.
    """

    model: nn.Module
    tensorboard: bool = True

    def train_batches(self, info: DistInfo) -> Batches:
        """The training batches of this process."""
        raise NotImplementedError

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError

    def build_schedule(
        self, optimizer: torch.optim.Optimizer, *, iters_per_epoch: int, total_iters: int
    ) -> Schedule:
        raise NotImplementedError

    def losses(self, net: nn.Module, batch: Any, device: torch.device) -> dict[str, Tensor]:
        """The named losses of one micro-batch, `loss` their sum; runs under the trainer's autocast.

        `net` is the model as the trainer runs it (DDP-wrapped when distributed)."""
        raise NotImplementedError

    def describe(self, batch: Any) -> str:
        """What a non-finite-loss message says about the batch (e.g. its image ids)."""
        return "batch contents unknown"

    def evaluate(self, model: nn.Module) -> dict[str, float] | None:
        """Metrics of `model` (run on every process), or None when the task has no evaluation."""
        return None

    def checkpoint_config(self) -> dict[str, Any]:
        """The JSON-serialisable config saved in every checkpoint (the trainer adds the position)."""
        return {}

    def epoch_record(self, trainer: Trainer, record: dict[str, Any], metrics: dict[str, float]) -> dict:
        """The metrics.jsonl line of an epoch from the trainer's `record` and the evaluation."""
        return {**record, **metrics}

    def after_step(self, trainer: Trainer, values: dict[str, float]) -> None:
        """Called after every optimiser step with the step's mean loss terms."""

    def after_epoch(self, trainer: Trainer, record: dict[str, Any], metrics: dict[str, float]) -> None:
        """Called after an epoch's line is written (`metrics` is empty when it was not evaluated)."""
