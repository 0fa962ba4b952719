"""Matplotlib on the Agg backend (no display needed) and PNG writing shared by every `boxer viz` figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # a figure is only ever written to a file

import matplotlib.pyplot as plt  # noqa: E402

DPI = 100
HEAD_COLOURS = plt.get_cmap("tab10").colors  # one colour per attention head (cycled past 10)


def head_colour(head: int) -> tuple[float, float, float]:
    """The RGB colour (in [0, 1]) of attention head `head`."""
    return HEAD_COLOURS[head % len(HEAD_COLOURS)]


def new_figure(width_px: int, height_px: int):
    """A figure of exactly `width_px` x `height_px` pixels when saved at `DPI`."""
    return plt.figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


def save_figure(fig, path: str | Path) -> Path:
    """Writes `fig` as a PNG at `DPI` (size kept: no tight bbox) and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path
