"""How training stops: on a signal at the next iteration boundary, on a non-finite loss at once.

SIGINT / SIGTERM (Ctrl-C) set a flag that the trainer (boxer/engine/trainer.py) reads after each
optimiser step: it then saves `last` and raises `TrainingInterrupted`; a second signal acts at once
(the previous handlers are back in place after the first).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from boxer.errors import BoxerError


class NonFiniteLoss(BoxerError):
    """A loss term became NaN or infinite; training stops before the optimiser step."""


class TrainingInterrupted(BoxerError):
    """SIGINT / SIGTERM stopped training; the message says what `last` holds."""

    exit_code = 130


class StopSignals:
    """SIGINT / SIGTERM handlers that record the signal's name in `requested`.

    Args:
        run_dir: where `last` is saved (named in the note printed when a signal arrives).
        enabled: install handlers at all (runs that save nothing keep Python's default).
        is_main: print the note (the main process only).
    """

    def __init__(self, run_dir: Path | None, *, enabled: bool = True, is_main: bool = True) -> None:
        self.run_dir, self.enabled, self.is_main = run_dir, enabled, is_main
        self.requested: str | None = None

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The handlers, for the duration of the block (only in the main thread)."""
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        names = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.getsignal(s) for s in names}

        def request_stop(signum: int, frame: Any) -> None:
            self.requested = signal.Signals(signum).name
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self.is_main:  # os.write: safe inside a signal handler, unlike print
                note = f"\n{self.requested}: saving {self.run_dir / 'last'} after this iteration "
                os.write(2, (note + "(again to stop without saving)\n").encode())

        for s in names:
            signal.signal(s, request_stop)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
