"""Run logging: progress, TensorBoard scalars, `metrics.jsonl` (one JSON line per epoch), `log.txt`.

Only the main process logs. Progress (stderr) shows loss, lr, it/s and the ETA: a tqdm bar on a
terminal, and a plain line every `every_s` seconds when stderr is a file or a pipe (CI logs,
`make demo > log`), so logs hold no carriage-return frames. TensorBoard events go to `RUN/tb`;
every finished epoch appends one line to `RUN/metrics.jsonl` (on resume, lines of epochs that will
be re-run are dropped first). `OutputLog` copies what a command prints into `RUN/log.txt`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from boxer.engine.checkpoint import atomic_write_text

log = logging.getLogger("boxer.train")

METRICS = "metrics.jsonl"
LOG = "log.txt"
PROGRESS_SECONDS = 30.0  # between plain progress lines when stderr is not a terminal


def max_rss_mb() -> float:
    """Peak resident memory of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RunLogger:
    """Progress bar, TensorBoard and metrics.jsonl for one run.

    Args:
        run_dir: the run directory (None: progress and messages only, no files).
        enabled: False on non-main processes (everything becomes a no-op).
        progress: show the progress bar.
        tensorboard: write TensorBoard events to `run_dir/tb`.
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        *,
        enabled: bool = True,
        progress: bool = True,
        tensorboard=True,
        progress_seconds: float = PROGRESS_SECONDS,
    ):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.enabled = enabled
        self.show_progress = progress and enabled
        self.tensorboard = enabled and tensorboard and self.run_dir is not None
        self.progress_seconds = progress_seconds
        self.writer = None
        self.bar: Progress | None = None

    def open(self) -> None:
        """Starts the TensorBoard writer (creates `RUN/tb`); nothing is written before this."""
        if self.tensorboard and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))

    # ---------------------------------------------------------------- progress bar
    def start_epoch(self, epoch: int, epochs: int, total: int, initial: int) -> None:
        if not self.show_progress:
            return
        self.bar = Progress(
            total, desc=f"epoch {epoch + 1}/{epochs}", initial=initial, every_s=self.progress_seconds
        )

    def step(self, loss: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.update(1, loss=f"{loss:.4f}", lr=f"{lr:.2e}")

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

    def image(self, tag: str, image, step: int) -> None:
        """An RGB uint8 array [H, W, 3] as a TensorBoard image."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def epoch_line(self, record: dict[str, Any]) -> None:
        """Appends one JSON line to metrics.jsonl and flushes TensorBoard."""
        if not self.enabled or self.run_dir is None:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
        if self.writer is not None:
            self.writer.flush()

    def truncate_metrics(self, completed_epochs: int) -> None:
        """Keeps only lines of epochs <= `completed_epochs` (used when resuming)."""
        if not self.enabled or self.run_dir is None or not (self.run_dir / METRICS).exists():
            return
        path = self.run_dir / METRICS
        keep = [ln for ln in path.read_text().splitlines() if _epoch_of(ln) <= completed_epochs]
        atomic_write_text(path, "".join(f"{ln}\n" for ln in keep))

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
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


# ---------------------------------------------------------------- progress


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Progress:
    """Progress of a loop on stderr: a tqdm bar on a terminal, else a plain line every `every_s` s.

    The plain lines (also the last one, written by `close`) read
    `epoch 1/3: 120/500 it (24%), 3.10 it/s, 0:38 elapsed, ETA 2:02, loss=1.2345, lr=2.00e-04`.
    Under an `OutputLog` the tqdm frames stay on the terminal and only that last line is logged.

    Args:
        total: steps expected.
        desc: what is counted (`epoch 1/3`, `eval`).
        initial: steps already done (resume).
        unit: the step's unit.
        every_s: seconds between plain lines (non-terminal output).
        stream: where to write (default sys.stderr).
    """

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        initial: int = 0,
        unit: str = "it",
        every_s: float = PROGRESS_SECONDS,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.n, self.initial = total, initial, initial
        self.desc, self.unit, self.every_s = desc, unit, every_s
        self.postfix: dict[str, str] = {}
        self.start = self.last = time.monotonic()
        self.tqdm = None
        if _isatty(self.stream):
            from tqdm.auto import tqdm

            terminal = getattr(self.stream, "terminal", self.stream)
            self.tqdm = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=terminal
            )

    def update(self, n: int = 1, **postfix: str) -> None:
        self.n += n
        self.postfix.update(postfix)
        if self.tqdm is not None:
            if postfix:
                self.tqdm.set_postfix(self.postfix, refresh=False)
            self.tqdm.update(n)
        elif time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            self._line(self.stream)

    def line(self) -> str:
        """The plain progress line."""
        elapsed = time.monotonic() - self.start
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return (
            f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}, {rate:.2f} {self.unit}/s, "
            f"{_clock(elapsed)} elapsed, ETA {_clock(eta)}{extra}"
        )

    def _line(self, stream) -> None:
        stream.write(self.line() + "\n")
        stream.flush()

    def write(self, message: str) -> None:
        """Prints a line without breaking the bar."""
        if self.tqdm is not None:
            self.tqdm.write(message, file=self.tqdm.fp)
            _log_only(self.stream, message + "\n")
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
            self.tqdm = None
            _log_only(self.stream, self.line() + "\n")
        elif self.every_s is not None:
            self._line(self.stream)
            self.every_s = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _log_only(stream, text: str) -> None:
    if isinstance(stream, _Tee):
        stream.log.write(text)


# ---------------------------------------------------------------- log.txt


class _Tee:
    """A text stream that writes to `stream` and to `log`."""

    def __init__(self, stream: TextIO, log: OutputLog) -> None:
        self.terminal = stream
        self.log = log

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()

    def isatty(self) -> bool:
        return _isatty(self.terminal)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.terminal, name)


class OutputLog:
    """Copies what is printed (stdout and stderr) into a text file, from the `attach` on.

    Used as a context manager around a command; what is printed before `attach(path)` is kept in
    memory and written first, so a command that fails before its run directory exists writes
    nothing. Carriage-return frames (progress bars of other libraries) are reduced to their last frame.
    """

    def __init__(self) -> None:
        self.buffer: list[str] = []
        self.file: TextIO | None = None
        self.saved: tuple[Any, Any] | None = None

    def __enter__(self) -> OutputLog:
        self.saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Tee(sys.stdout, self), _Tee(sys.stderr, self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            sys.stdout, sys.stderr = self.saved
            self.saved = None
        if self.file is not None:
            self.file.close()
            self.file = None

    def attach(self, path: str | Path) -> None:
        """Starts appending to `path` (with what was printed so far)."""
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
        self.file.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n")
        self.file.write("".join(self.buffer))
        self.file.flush()
        self.buffer = []

    def write(self, text: str) -> None:
        if "\r" in text:
            text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
        if self.file is not None:
            self.file.write(text)
            self.file.flush()
        else:
            self.buffer.append(text)
