"""A training run's history: loss terms, learning rate and AP against iterations and wall-clock time.

Sources (what `boxer/engine/trainer.py` and `boxer/engine/logging.py` write in a run folder):
`RUN/metrics.jsonl`, one line per epoch (`iteration`, epoch means `train/<term>`, `lr`,
`epoch_seconds`, and the evaluation's `bbox/AP`, ...), and the TensorBoard events in `RUN/tb`
(`train/<term>` and `train/lr` every `log_every` iterations, `val/<metric>` after each evaluation,
with wall times). Per-iteration curves come from TensorBoard when it holds at least two points of a
term, else from the epoch means. Wall-clock time is the events' time since the run's first event,
or the sum of `epoch_seconds` (training time only) without events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boxer.errors import BoxerError

METRICS = "metrics.jsonl"  # as boxer.engine.logging.METRICS
SCORES = ("bbox/AP", "bbox/AP50", "segm/AP", "segm/AP50", "val_top1", "val_top5")
LOSSES = ("train_loss", "val_loss")  # classification runs (boxer/classification/task.py) name them so


@dataclass
class Series:
    """One curve: `value[i]` at iteration `iteration[i]`, `seconds[i]` after the run started."""

    iteration: np.ndarray
    seconds: np.ndarray
    value: np.ndarray


@dataclass
class RunHistory:
    """The curves of one run: `losses` (term -> Series), `lr`, `scores` (metric -> Series)."""

    name: str
    path: Path
    losses: dict[str, Series] = field(default_factory=dict)
    lr: Series | None = None
    scores: dict[str, Series] = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    x_unit: str = "iteration"  # "epoch" for classification runs (their lines have no iteration)


def read_metrics(run: Path) -> list[dict]:
    """The JSON lines of `run/metrics.jsonl` (a run that never finished an epoch has none)."""
    path = run / METRICS
    if not path.is_file():
        raise BoxerError(f"{run}: no {METRICS} (not a run folder, or no epoch finished yet)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_events(run: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """TensorBoard scalars of `run/tb`: tag -> (steps, wall seconds since the first event, values)."""
    if not (run / "tb").is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    raw = {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}
    start = _start_time(raw.get("train/loss", []))
    if start is None:
        start = min((e.wall_time for events in raw.values() for e in events), default=0.0)
    return {
        tag: (np.array([e.step for e in ev]), np.array([e.wall_time - start for e in ev]),
              np.array([e.value for e in ev]))
        for tag, ev in raw.items()
    }  # fmt: skip


def _start_time(events: list) -> float | None:
    """When iteration 0 began: the first logged loss's time, less its steps at the first two's rate."""
    if len(events) < 2 or events[1].step <= events[0].step:
        return None
    rate = (events[1].wall_time - events[0].wall_time) / (events[1].step - events[0].step)
    return events[0].wall_time - events[0].step * rate


def _epoch_seconds(epochs: list[dict]) -> np.ndarray:
    if epochs and "train_wall_s" in epochs[0]:  # classification runs record the running total
        return np.array([e.get("train_wall_s") or 0.0 for e in epochs])
    return np.cumsum([e.get("epoch_seconds") or 0.0 for e in epochs])


def _x(epoch: dict) -> int:
    return int(epoch.get("iteration", epoch.get("epoch", 0)))


def _from_epochs(epochs: list[dict], key: str, events: dict) -> Series | None:
    rows = [(_x(e), i, e[key]) for i, e in enumerate(epochs) if isinstance(e.get(key), (int, float))]
    if not rows:
        return None
    it, idx, val = (np.array(c) for c in zip(*rows))
    seconds = _epoch_seconds(epochs)[idx]
    tagged = events.get(f"val/{key}")
    if tagged is not None and len(tagged[0]) == len(it) and "train/loss" in events:  # evaluation time
        seconds = tagged[1]
    return Series(it, seconds, val)


def read_history(run: str | Path, name: str | None = None) -> RunHistory:
    """The history of the run folder `run` (its name defaults to the folder's)."""
    run = Path(run)
    epochs, events = read_metrics(run), read_events(run)
    unit = "iteration" if any("iteration" in e for e in epochs) else "epoch"
    hist = RunHistory(name or run.name, run, epochs=epochs, x_unit=unit)
    terms = sorted({k[6:] for e in epochs for k in e if k.startswith("train/")})
    for term in terms:
        tag = events.get(f"train/{term}")
        per_epoch = _from_epochs(epochs, f"train/{term}", {})
        series = Series(*tag) if tag is not None and len(tag[0]) >= 2 else per_epoch
        if series is not None:
            hist.losses[term] = series
    for key in LOSSES:
        if (series := _from_epochs(epochs, key, {})) is not None:
            hist.losses[key] = series
    tag = events.get("train/lr")
    hist.lr = Series(*tag) if tag is not None and len(tag[0]) >= 2 else _from_epochs(epochs, "lr", {})
    for key in SCORES:
        series = _from_epochs(epochs, key, events)
        if series is not None:
            hist.scores[key] = series
    return hist
