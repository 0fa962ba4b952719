"""The training loop of every task: exact resume, DDP, gradient accumulation, AMP, time cap, checkpoints.

One `Trainer` runs a *task* (boxer/engine/task.py: the model, its batches, optimiser and schedule, the
loss of a batch, evaluation), for detection (boxer/engine/detection.py), classification (the
classification package's task.py) and backbone pretraining (boxer/engine/pretrain.py); the loop follows
the step-plus-hooks shape of detectron2's SimpleTrainer, written small. One *iteration* is one
optimiser step over `accum_steps` micro-batches. Checkpoints are taken at iteration boundaries and
hold everything needed to continue bit-identically: weights, optimiser, schedule, scaler, per-rank
RNG states, the position (epoch, micro-batch, iteration) and the training time spent.

Nothing is lost: `last` is written before the end-of-epoch evaluation; SIGINT / SIGTERM (Ctrl-C)
saves `last` at the next iteration boundary and stops with `TrainingInterrupted` (a second one
stops at once); an image that cannot be loaded stops training with one line naming it, after
saving `last` when the failure falls on an iteration boundary. A non-finite loss stops training
before the optimiser step (`NonFiniteLoss`), leaving `last` as it was. Without a run directory
(`run_dir=None`) nothing is written: no checkpoints, metrics or signal handling.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from boxer.engine import checkpoint as ckpt
from boxer.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    any_true,
    barrier,
    gather_objects,
    pick_device,
    wrap_model,
)
from boxer.engine.loader import DataLoadError, check_batch
from boxer.engine.logging import RunLogger, max_rss_mb
from boxer.engine.precision import autocast
from boxer.engine.rng import capture_rng, restore_rng
from boxer.engine.stopping import NonFiniteLoss, StopSignals, TrainingInterrupted
from boxer.engine.task import CLOCKS, LoopConfig, Task
from boxer.errors import BoxerError

__all__ = ["LoopConfig", "NonFiniteLoss", "Trainer", "TrainState", "TrainingInterrupted"]


@dataclass
class TrainState:
    """Where training stands: next epoch / micro-batch to run, optimiser steps done, best metric,
    and the time spent in training epochs (wall and CPU seconds, over all resumes)."""

    epoch: int = 0
    batch: int = 0
    iteration: int = 0
    best: float = -math.inf
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_count: int = 0
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0


class Trainer:
    """Trains `task.model` on the task's batches; checkpoints and logs into `run_dir`.

    Args:
        task: what is trained and how its loss is computed (boxer/engine/task.py).
        loop: length, precision, time cap, evaluation and checkpoint cadence.
        run_dir: the run directory (None: write nothing).
        info: rank/world/device (default: single process on `loop.device`).
    """

    def __init__(
        self, task: Task, loop: LoopConfig, *, run_dir: str | Path | None, info: DistInfo | None = None
    ) -> None:
        if loop.clock not in CLOCKS:
            raise BoxerError(f"clock must be one of {', '.join(CLOCKS)}, got {loop.clock!r}")
        self.task, self.cfg = task, loop
        self.info = info or DistInfo(device=pick_device(loop.device))
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.model = task.model.to(self.info.device)
        self.net = wrap_model(self.model, self.info, find_unused_parameters=loop.find_unused_parameters)
        self.loader = task.train_batches(self.info)
        self.batches_per_epoch = self.loader.batches_per_epoch()
        if self.batches_per_epoch == 0:
            raise BoxerError("data: the training set is smaller than one batch")
        self.iters_per_epoch = math.ceil(self.batches_per_epoch / loop.accum_steps)
        self.epochs = math.ceil(loop.max_iters / self.iters_per_epoch) if loop.max_iters else loop.epochs
        self.optimizer = task.build_optimizer(self.model)
        total = loop.max_iters or self.epochs * self.iters_per_epoch
        self.schedule = task.build_schedule(
            self.optimizer, iters_per_epoch=self.iters_per_epoch, total_iters=total
        )
        fp16 = loop.amp == "fp16" and self.info.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.info.device.type, enabled=fp16)
        self.state = TrainState()
        self.stopped_by_time = False
        self._fit_start: float | None = None
        self._tick: tuple[float, float] | None = None  # wall, CPU clocks training time counts from
        self.signals = StopSignals(self.run_dir, enabled=self.run_dir is not None, is_main=self.info.is_main)
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.info.is_main,
            progress=loop.progress,
            progress_seconds=loop.progress_seconds,
            tensorboard=task.tensorboard and self.run_dir is not None,
        )

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_config(self) -> dict[str, Any]:
        position = {"epoch": self.state.epoch, "iteration": self.state.iteration}
        return {**self.task.checkpoint_config(), **position}

    def save(self, name: str = "last") -> None:
        """Writes checkpoint `name` (main process writes; every process contributes its RNG state)."""
        if self.run_dir is None:
            return
        self._count_training_time()
        rng = gather_objects(capture_rng())
        if self.info.is_main:
            state = {
                **asdict(self.state),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng,
                "world_size": self.info.world_size,
            }
            ckpt.save_checkpoint(
                self.run_dir, name, model=self.model, state=state, config=self.checkpoint_config()
            )
        barrier()

    def resume(self, path: str | Path) -> None:
        """Restores weights, optimiser, schedule, scaler, RNG and position from a checkpoint."""
        loaded = ckpt.load_checkpoint(path)
        if loaded.state is None:
            raise BoxerError(f"{loaded.path}: no training state ({ckpt.STATE}); use --init to start from it")
        st = loaded.state
        if int(st.get("world_size", 1)) != self.info.world_size:
            raise BoxerError(
                f"{loaded.path}: saved with {st.get('world_size')} processes, resuming with "
                f"{self.info.world_size}; exact resume needs the same world size"
            )
        try:
            self.model.load_state_dict(loaded.weights)
            self.optimizer.load_state_dict(st["optimizer"])
            self.schedule.load_state_dict(st["scheduler"])
            self.scaler.load_state_dict(st["scaler"])
            fields = TrainState.__dataclass_fields__
            self.state = TrainState(**{k: v for k, v in st.items() if k in fields})
            restore_rng(st["rng"][self.info.rank])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
            reason = " ".join(str(err).split())[:300]
            raise BoxerError(
                f"{loaded.path}: does not fit this model / config ({type(err).__name__}: {reason})"
            ) from None
        if self.run_dir is not None:
            self.logger.truncate_metrics(self.state.epoch)
        self.logger.info(
            f"resumed from {loaded.path}: epoch {self.state.epoch + 1}, batch {self.state.batch}, "
            f"iteration {self.state.iteration}"
        )

    # ---------------------------------------------------------------- the loop
    def fit(self, *, stop_at_iteration: int | None = None) -> dict[str, Any]:
        """Runs the remaining epochs; returns the last epoch's record.

        Args:
            stop_at_iteration: stop (after checkpointing `last`) once this many optimiser steps are
                done, as if interrupted; used to test exact resume.
        """
        record: dict[str, Any] = {}
        self._fit_start = time.monotonic()
        self.logger.open()
        try:
            with self.signals.installed():
                while self.state.epoch < self.epochs and not self._spent_before_start():
                    if self._train_epoch(stop_at_iteration):
                        self.save("last")
                        return record
                    record = self._end_epoch()
                    if self._stop_requested() and self.state.epoch < self.epochs:
                        raise self._interrupted()
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, say what `last` holds
            if self.run_dir is None:
                raise
            raise TrainingInterrupted(f"interrupted; {ckpt.describe_last(self.run_dir)}") from None
        finally:
            self.logger.close()
        return record

    # ---------------------------------------------------------------- time
    def _clock_seconds(self) -> float:
        """What the time cap counts (`loop.clock`): run time of this `fit`, or training time."""
        if self.cfg.clock == "run":
            return time.monotonic() - self._fit_start if self._fit_start is not None else 0.0
        spent = self.state.train_seconds
        if self._tick is not None:
            spent += time.perf_counter() - self._tick[0]
        return spent

    def _count_training_time(self) -> None:
        """Adds the training time since the last count to the state (what checkpoints carry)."""
        if self._tick is not None:
            wall, cpu = self._tick
            self.state.train_seconds += time.perf_counter() - wall
            self.state.train_cpu_seconds += time.process_time() - cpu
            self._tick = (time.perf_counter(), time.process_time())

    def _spent_before_start(self) -> bool:
        """A resumed run whose training time already reached the cap (`clock="training"`) trains no more."""
        return self.cfg.clock == "training" and self._out_of_time()

    def time_fraction(self) -> float:
        """The share of `max_minutes` spent (0 without a cap), averaged over processes."""
        if not self.cfg.max_minutes:
            return 0.0
        fraction = self._clock_seconds() / (60 * self.cfg.max_minutes)
        return all_reduce_mean({"f": fraction}, self.info.device)["f"]

    def _out_of_time(self) -> bool:
        if not self.cfg.max_minutes:
            return False
        over = self._clock_seconds() >= 60 * self.cfg.max_minutes
        self.stopped_by_time = any_true(over, self.info.device)
        return self.stopped_by_time

    # ---------------------------------------------------------------- signals
    def _stop_requested(self) -> bool:
        requested = self.signals.requested is not None
        return any_true(requested, self.info.device) if self.info.distributed else requested

    def _interrupted(self) -> TrainingInterrupted:
        st = self.state
        return TrainingInterrupted(
            f"{self.signals.requested or 'signal'}: stopped at epoch {st.epoch + 1}, iteration "
            f"{st.iteration}; {ckpt.describe_last(self.run_dir)}"
        )

    # ---------------------------------------------------------------- one epoch
    def _train_epoch(self, stop_at: int | None) -> bool:
        """Trains from the saved position to the end of the epoch; True when stopped early."""
        cfg, st = self.cfg, self.state
        self.net.train()
        done = st.batch // cfg.accum_steps
        total = self.iters_per_epoch
        if cfg.max_iters:  # the bar of the last epoch ends at max_iters
            total = min(total, cfg.max_iters - st.iteration + done)
        self.logger.start_epoch(st.epoch, self.epochs, total, done)
        self._tick = (time.perf_counter(), time.process_time())
        epoch_start = time.perf_counter()
        batches = iter(self.loader.epoch(st.epoch, st.batch))
        try:
            while st.batch < self.batches_per_epoch:
                if self._train_iteration(batches, stop_at):
                    return True
                if cfg.max_minutes and self._out_of_time():
                    self.epochs = st.epoch + 1
                    self.logger.info(
                        f"max_minutes={cfg.max_minutes} reached after {st.iteration} iterations: stopping"
                    )
                    break
                if cfg.max_iters and st.iteration >= cfg.max_iters:
                    break
        finally:
            self._count_training_time()
            self._tick = None
            self.epoch_seconds = time.perf_counter() - epoch_start
            self.logger.end_epoch()
        return False

    def _train_iteration(self, batches, stop_at: int | None) -> bool:
        """One optimiser step and what follows it; True when `stop_at` is reached."""
        cfg, st = self.cfg, self.state
        group = min(cfg.accum_steps, self.batches_per_epoch - st.batch)
        losses = self._accumulate_or_stop(batches, group)
        self._optimizer_step()
        for key, value in losses.items():
            st.epoch_sums[key] = st.epoch_sums.get(key, 0.0) + value
        st.epoch_count += 1
        lr = max(g["lr"] for g in self.optimizer.param_groups)
        self.logger.step(losses["loss"], lr)
        if st.iteration % cfg.log_every == 0:
            self.logger.scalars({**losses, "lr": lr}, st.iteration, prefix="train/")
        self.task.after_step(self, losses)
        if cfg.max_iters and st.iteration >= cfg.max_iters:
            st.batch = self.batches_per_epoch
            return False
        if stop_at is not None and st.iteration >= stop_at:
            return True
        if self._stop_requested():
            self.save("last")
            raise self._interrupted()
        if cfg.ckpt_every_iters and st.iteration % cfg.ckpt_every_iters == 0:
            self.save("last")
        return False

    def _accumulate_or_stop(self, batches, group: int) -> dict[str, float]:
        """`_accumulate`; when a batch cannot be loaded, saves `last` if on an iteration boundary."""
        first = self.state.batch
        try:
            return self._accumulate(batches, group)
        except DataLoadError:
            self.logger.end_epoch()
            on_boundary = self.state.batch == first and self.state.iteration > 0
            if on_boundary and not self.info.distributed and self.run_dir is not None:
                self.save("last")
                self.logger.info(f"a training image failed to load; {ckpt.describe_last(self.run_dir)}")
            raise

    def _accumulate(self, batches, group: int) -> dict[str, float]:
        """Forward/backward over `group` micro-batches; returns their mean loss terms."""
        sums: dict[str, float] = {}
        for k in range(group):
            batch = check_batch(next(batches))
            sync = k == group - 1 or not self.info.distributed
            with nullcontext() if sync else self.net.no_sync(), autocast(self.info.device, self.cfg.amp):
                losses = self.task.losses(self.net, batch, self.info.device)
            values = self._check_finite(losses, batch)
            self.scaler.scale(losses["loss"] / group).backward()
            self.state.batch += 1
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value / group
        return sums

    def _check_finite(self, losses: dict[str, Tensor], batch: Any) -> dict[str, float]:
        """Loss values averaged over processes; raises NonFiniteLoss everywhere if any is not finite.

        A NaN on any process makes the all-reduced mean NaN, so one all-reduce does both jobs.
        """
        keys = sorted(losses)
        local = dict(zip(keys, torch.stack([losses[k].detach().float().reshape(()) for k in keys]).tolist()))
        values = all_reduce_mean(local, self.info.device)
        if all(math.isfinite(v) for v in values.values()):
            return values
        bad = [f"{k}={v}" for k, v in local.items() if not math.isfinite(v)]
        where = f"epoch {self.state.epoch + 1}, iteration {self.state.iteration + 1}"
        last = self.run_dir / "last" if self.run_dir is not None else None
        kept = (
            f"last good checkpoint {last} left untouched"
            if last is not None and last.exists()
            else "no checkpoint was written"
        )
        others = ", ".join(k for k, v in values.items() if not math.isfinite(v))
        terms = ", ".join(bad) if bad else f"on another process ({others})"
        raise NonFiniteLoss(f"non-finite loss at {where}: {terms}; {self.task.describe(batch)}; {kept}")

    def _optimizer_step(self) -> None:
        if self.cfg.clip_max_norm > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.advance(self.time_fraction())
        self.state.iteration += 1

    # ---------------------------------------------------------------- epoch end
    def _end_epoch(self) -> dict[str, Any]:
        """Writes `last`, evaluates when due, writes the epoch's metrics line and `best`.

        `last` comes first, so an evaluation that fails (a broken val image) loses no training.
        """
        st, cfg = self.state, self.cfg
        done = st.epoch + 1
        record: dict[str, Any] = {"epoch": done, "iteration": st.iteration}
        record.update({f"train/{k}": v / max(st.epoch_count, 1) for k, v in st.epoch_sums.items()})
        record["lr"] = max(g["lr"] for g in self.optimizer.param_groups)
        seconds = getattr(self, "epoch_seconds", float("nan"))
        record["epoch_seconds"] = round(seconds, 2) if math.isfinite(seconds) else None
        record["max_rss_mb"] = round(max_rss_mb(), 1)
        st.epoch, st.batch, st.epoch_sums, st.epoch_count = done, 0, {}, 0
        self.save("last")
        metrics: dict[str, float] = {}
        if cfg.eval_every and (done % cfg.eval_every == 0 or done == self.epochs):
            metrics = self._evaluate(done) or {}
            self.logger.scalars(metrics, st.iteration, prefix="val/")
        self.logger.scalars(
            {k: v for k, v in record.items() if k.startswith("train/")}, done, prefix="epoch/"
        )
        record = self.task.epoch_record(self, record, metrics)
        self.logger.epoch_line(record)
        self._keep_best(metrics)
        self.task.after_epoch(self, record, metrics)
        return record

    def _keep_best(self, metrics: dict[str, float]) -> None:
        """Writes `best` when the best metric improved (and `last` again, to record the new best)."""
        best = metrics.get(self.cfg.best_metric)
        if metrics and best is None:
            self.logger.info(
                f"best_metric {self.cfg.best_metric!r} is not among {sorted(metrics)}; no best checkpoint"
            )
        if any_true(best is not None and best > self.state.best, self.info.device):
            self.state.best = float(best)
            self.save("last")
            self.save("best")

    def _evaluate(self, done: int) -> dict[str, float] | None:
        try:
            return self.task.evaluate(self.model)
        except (BoxerError, KeyboardInterrupt):
            if self.run_dir is not None:
                self.logger.info(f"evaluation after epoch {done} stopped; {ckpt.describe_last(self.run_dir)}")
            raise
