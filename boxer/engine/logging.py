"""Run logging: a progress bar, TensorBoard scalars and `metrics.jsonl` (one JSON line per epoch).

Only the main process logs. The progress bar (tqdm, on stderr) shows loss, lr, it/s and the ETA;
TensorBoard events go to `RUN/tb`; every finished epoch appends one line to `RUN/metrics.jsonl`
(on resume, lines of epochs that will be re-run are dropped first).
"""

from __future__ import annotations

import json
import logging
import math
import resource
import sys
from pathlib import Path
from typing import Any

from boxer.engine.checkpoint import atomic_write_text

log = logging.getLogger("boxer.train")

METRICS = "metrics.jsonl"


def max_rss_mb() -> float:
    """Peak resident memory of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RunLogger:
    """Progress bar, TensorBoard and metrics.jsonl for one run.

    Args:
        run_dir: the run directory.
        enabled: False on non-main processes (everything becomes a no-op).
        progress: show the progress bar.
        tensorboard: write TensorBoard events to `run_dir/tb`.
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, progress: bool = True, tensorboard=True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.show_progress = progress and enabled
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        self.bar = None

    # ---------------------------------------------------------------- progress bar
    def start_epoch(self, epoch: int, epochs: int, total: int, initial: int) -> None:
        if not self.show_progress:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="it",
            dynamic_ncols=True,
            file=sys.stderr,
            leave=True,
        )

    def step(self, loss: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            self.bar.update(1)

    def end_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # ---------------------------------------------------------------- scalars and lines
    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}{key}", value, step)

    def epoch_line(self, record: dict[str, Any]) -> None:
        """Appends one JSON line to metrics.jsonl and flushes TensorBoard."""
        if not self.enabled:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
        if self.writer is not None:
            self.writer.flush()

    def truncate_metrics(self, completed_epochs: int) -> None:
        """Keeps only lines of epochs <= `completed_epochs` (used when resuming)."""
        path = self.run_dir / METRICS
        if not self.enabled or not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines() if _epoch_of(ln) <= completed_epochs]
        atomic_write_text(path, "".join(f"{ln}\n" for ln in keep))

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, flush=True)

    def close(self) -> None:
        self.end_epoch()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _epoch_of(line: str) -> int:
    try:
        return int(json.loads(line).get("epoch", 0))
    except (ValueError, AttributeError):
        return 10**9
