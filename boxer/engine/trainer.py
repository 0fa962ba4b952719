"""The training loop: exact resume, DDP, gradient accumulation, AMP, checkpoints, evaluation.

Implements the engine of the BoxeR-2D recipe (the paper's training setup; docs/training.md) for any
detector of the protocol in docs/CONTRACTS.md (`forward(images, pad_mask, targets) -> dict` of weighted
losses with `loss` their sum). One *iteration* is one optimiser step over `accum_steps` micro-batches.
Checkpoints are taken at iteration boundaries and hold everything needed to continue bit-identically:
weights, optimiser, schedule, scaler, per-rank RNG states, and the position (epoch, micro-batch,
iteration).

Nothing is lost: `last` is written before the end-of-epoch evaluation; SIGINT / SIGTERM (Ctrl-C)
saves `last` at the next iteration boundary and stops with `TrainingInterrupted` (a second one
stops at once); an image that cannot be loaded stops training with one line naming it, after
saving `last` when the failure falls on an iteration boundary.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from boxer.engine import checkpoint as ckpt
from boxer.engine.config import TrainConfig
from boxer.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    any_true,
    barrier,
    gather_objects,
    pick_device,
    wrap_model,
)
from boxer.engine.evaluate import autocast, batch_to_device
from boxer.engine.loader import DataLoadError, TrainLoader, check_batch
from boxer.engine.logging import RunLogger, max_rss_mb
from boxer.engine.optim import build_optimizer, build_schedule
from boxer.engine.rng import capture_rng, restore_rng
from boxer.errors import BoxerError


@dataclass
class TrainState:
    """Where training stands: next epoch / micro-batch to run, optimiser steps done, best metric."""

    epoch: int = 0
    batch: int = 0
    iteration: int = 0
    best: float = -math.inf
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_count: int = 0


class NonFiniteLoss(BoxerError):
    """A loss term became NaN or infinite; training stops before the optimiser step."""


class TrainingInterrupted(BoxerError):
    """SIGINT / SIGTERM stopped training; the message says what `last` holds."""

    exit_code = 130


class Trainer:
    """Trains `model` on `train_set`; checkpoints and logs into `run_dir`.

    Args:
        cfg: the resolved config.
        model: a detector (unwrapped; the trainer moves it and wraps it in DDP when distributed).
        train_set: the training dataset.
        collate_fn: batch builder returning `DetectionBatch(images, pad_mask, targets)`.
        run_dir: the run directory.
        info: rank/world/device (default: single process on `cfg.device`).
        evaluate_fn: `evaluate_fn(model) -> metrics` run every `cfg.eval_every` epochs (all ranks).
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
        run_dir: str | Path,
        info: DistInfo | None = None,
        evaluate_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        meta: dict[str, Any] | None = None,
        figure_fn: Callable[[nn.Module], Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.figure_fn = figure_fn
        self.info = info or DistInfo(device=pick_device(cfg.device))
        self.run_dir = Path(run_dir)
        self.model = model.to(self.info.device)
        self.net = wrap_model(self.model, self.info, find_unused_parameters=cfg.find_unused_parameters)
        self.loader = TrainLoader(
            train_set,
            batch_size=cfg.batch_size,
            collate_fn=collate_fn,
            info=self.info,
            seed=cfg.seed,
            workers=cfg.workers,
            drop_last=cfg.drop_last,
        )
        self.batches_per_epoch = self.loader.batches_per_epoch()
        if self.batches_per_epoch == 0:
            raise BoxerError(f"data: the training set has {len(train_set)} images, fewer than one batch")
        self.iters_per_epoch = math.ceil(self.batches_per_epoch / cfg.accum_steps)
        self.epochs = math.ceil(cfg.max_iters / self.iters_per_epoch) if cfg.max_iters else cfg.epochs
        self.optimizer = build_optimizer(self.model, cfg)
        self.schedule = build_schedule(self.optimizer, cfg, iters_per_epoch=self.iters_per_epoch)
        fp16 = cfg.amp == "fp16" and self.info.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.info.device.type, enabled=fp16)
        self.evaluate_fn = evaluate_fn
        self.meta = dict(meta or {})
        self.state = TrainState()
        self._fit_start: float | None = None
        self._stop_signal: str | None = None
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.info.is_main,
            progress=cfg.progress,
            progress_seconds=cfg.progress_seconds,
        )

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_config(self) -> dict[str, Any]:
        position = {"epoch": self.state.epoch, "iteration": self.state.iteration}
        return {**self.cfg.to_dict(), **self.meta, **position}

    def save(self, name: str = "last") -> None:
        """Writes checkpoint `name` (main process writes; every process contributes its RNG state)."""
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
        start = self._fit_start = time.monotonic()
        self.logger.open()
        try:
            with self._stop_on_signals():
                while self.state.epoch < self.epochs:
                    stopped = self._train_epoch(start, stop_at_iteration)
                    if stopped:
                        self.save("last")
                        return record
                    record = self._end_epoch()
                    if self._stop_requested() and self.state.epoch < self.epochs:
                        raise self._interrupted()
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, say what `last` holds
            raise TrainingInterrupted(f"interrupted; {ckpt.describe_last(self.run_dir)}") from None
        finally:
            self.logger.close()
        return record

    # ---------------------------------------------------------------- signals
    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT / SIGTERM set a flag read at the next iteration boundary; a second one acts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        names = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.getsignal(s) for s in names}

        def request_stop(signum: int, frame: Any) -> None:
            self._stop_signal = signal.Signals(signum).name
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self.info.is_main:  # os.write: safe inside a signal handler, unlike print
                note = f"\n{self._stop_signal}: saving {self.run_dir / 'last'} after this iteration "
                os.write(2, (note + "(again to stop without saving)\n").encode())

        for s in names:
            signal.signal(s, request_stop)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop_requested(self) -> bool:
        if self.info.distributed:
            return any_true(self._stop_signal is not None, self.info.device)
        return self._stop_signal is not None

    def _interrupted(self) -> TrainingInterrupted:
        st = self.state
        return TrainingInterrupted(
            f"{self._stop_signal or 'signal'}: stopped at epoch {st.epoch + 1}, iteration {st.iteration}; "
            f"{ckpt.describe_last(self.run_dir)}"
        )

    def _time_iteration(self) -> int:
        """With `time_schedule` and `max_minutes`: the iteration the schedule would be at if time ran
        as fast as iterations (elapsed / max_minutes of the planned iterations), so that a time cap
        still reaches the LR drops; 0 otherwise. Averaged over processes, so every rank agrees."""
        cfg = self.cfg
        if not (cfg.time_schedule and cfg.max_minutes) or self._fit_start is None:
            return 0
        fraction = (time.monotonic() - self._fit_start) / (60 * cfg.max_minutes)
        fraction = all_reduce_mean({"f": fraction}, self.info.device)["f"]
        planned = cfg.max_iters or self.epochs * self.iters_per_epoch
        return int(min(fraction, 1.0) * planned)

    def _out_of_time(self, start: float) -> bool:
        return bool(self.cfg.max_minutes) and time.monotonic() - start > 60 * self.cfg.max_minutes

    def _train_epoch(self, start: float, stop_at: int | None) -> bool:
        """Trains from the saved position to the end of the epoch; True when stopped early."""
        cfg, st = self.cfg, self.state
        self.net.train()
        done = st.batch // cfg.accum_steps
        total = self.iters_per_epoch
        if cfg.max_iters:  # the bar of the last epoch ends at max_iters
            total = min(total, cfg.max_iters - st.iteration + done)
        self.logger.start_epoch(st.epoch, self.epochs, total, done)
        tick = time.monotonic()
        batches = iter(self.loader.epoch(st.epoch, st.batch))
        while st.batch < self.batches_per_epoch:
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
            if cfg.max_iters and st.iteration >= cfg.max_iters:
                st.batch = self.batches_per_epoch
                break
            if stop_at is not None and st.iteration >= stop_at:
                self.logger.end_epoch()
                return True
            if self._stop_requested():
                self.save("last")
                self.logger.end_epoch()
                raise self._interrupted()
            if cfg.max_minutes and any_true(self._out_of_time(start), self.info.device):
                self.epochs = st.epoch + 1
                break
            if cfg.ckpt_every_iters and st.iteration % cfg.ckpt_every_iters == 0:
                self.save("last")
        self.logger.end_epoch()
        if self.epochs == st.epoch + 1 and st.batch < self.batches_per_epoch:
            self.logger.info(
                f"max_minutes={cfg.max_minutes} reached after {st.iteration} iterations: stopping"
            )
        self.epoch_seconds = time.monotonic() - tick
        return False

    def _accumulate_or_stop(self, batches, group: int) -> dict[str, float]:
        """`_accumulate`; when a batch cannot be loaded, saves `last` if on an iteration boundary."""
        first = self.state.batch
        try:
            return self._accumulate(batches, group)
        except DataLoadError:
            self.logger.end_epoch()
            on_boundary = self.state.batch == first and self.state.iteration > 0
            if on_boundary and not self.info.distributed:
                self.save("last")
                self.logger.info(f"a training image failed to load; {ckpt.describe_last(self.run_dir)}")
            raise

    def _accumulate(self, batches, group: int) -> dict[str, float]:
        """Forward/backward over `group` micro-batches; returns their mean loss terms."""
        sums: dict[str, float] = {}
        for k in range(group):
            images, pad_mask, targets = batch_to_device(check_batch(next(batches)), self.info.device)
            sync = k == group - 1 or not self.info.distributed
            with nullcontext() if sync else self.net.no_sync(), autocast(self.info.device, self.cfg.amp):
                losses = self.net(images, pad_mask, targets)
            values = self._check_finite(losses, targets)
            self.scaler.scale(losses["loss"] / group).backward()
            self.state.batch += 1
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value / group
        return sums

    def _check_finite(self, losses: dict[str, Tensor], targets: list[dict]) -> dict[str, float]:
        """Loss values averaged over processes; raises NonFiniteLoss everywhere if any is not finite.

        A NaN on any process makes the all-reduced mean NaN, so one all-reduce does both jobs.
        """
        keys = sorted(losses)
        local = dict(zip(keys, torch.stack([losses[k].detach().float().reshape(()) for k in keys]).tolist()))
        values = all_reduce_mean(local, self.info.device)
        if all(math.isfinite(v) for v in values.values()):
            return values
        bad = [f"{k}={v}" for k, v in local.items() if not math.isfinite(v)]
        ids = [int(t["image_id"]) for t in targets]
        where = f"epoch {self.state.epoch + 1}, iteration {self.state.iteration + 1}"
        last = self.run_dir / "last"
        kept = f"last good checkpoint {last} left untouched" if last.exists() else "no checkpoint was written"
        terms = (
            ", ".join(bad)
            if bad
            else "on another process ("
            + ", ".join(k for k, v in values.items() if not math.isfinite(v))
            + ")"
        )
        raise NonFiniteLoss(f"non-finite loss at {where}: {terms}; image ids {ids}; {kept}")

    def _optimizer_step(self) -> None:
        if self.cfg.clip_max_norm > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step(self._time_iteration())
        self.state.iteration += 1

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
        if (
            self.evaluate_fn is not None
            and cfg.eval_every
            and (done % cfg.eval_every == 0 or done == self.epochs)
        ):
            metrics = self._evaluate(done)
            record.update(metrics)
            self.logger.scalars(metrics, st.iteration, prefix="val/")
            self._log_figure(st.iteration)
        self.logger.scalars(
            {k: v for k, v in record.items() if k.startswith("train/")}, done, prefix="epoch/"
        )
        self.logger.epoch_line(record)
        best = metrics.get(cfg.best_metric)
        if metrics and best is None:
            self.logger.info(
                f"best_metric {cfg.best_metric!r} is not among {sorted(metrics)}; no best checkpoint"
            )
        improved = any_true(best is not None and best > st.best, self.info.device)
        if improved:  # `last` again, so that it records the new best value
            st.best = float(best)
            self.save("last")
            self.save("best")
        return record

    def _log_figure(self, step: int) -> None:
        """The `figure_fn` picture in TensorBoard; a failure costs the picture, never the run."""
        if self.figure_fn is None or not self.info.is_main or not self.logger.tensorboard:
            return
        try:
            image = self.figure_fn(self.model)
        except Exception as err:  # noqa: BLE001  (a picture must not stop training)
            self.logger.info(f"TensorBoard attention picture skipped: {type(err).__name__}: {err}")
            return
        if image is not None:
            self.logger.image("val/box_attention", image, step)

    def _evaluate(self, done: int) -> dict[str, float]:
        try:
            return self.evaluate_fn(self.model)
        except (BoxerError, KeyboardInterrupt):
            self.logger.info(f"evaluation after epoch {done} stopped; {ckpt.describe_last(self.run_dir)}")
            raise
