"""Training curves of one or several runs (`boxer viz run`): an overview and every loss term.

`curves.png`: a row against iterations and a row against wall-clock minutes; columns: total loss,
the main loss terms (auxiliary-layer and encoder copies left to `losses.png`), learning rate, AP
(or top-1). Runs are overlaid in one colour each; within the terms panel the line style tells the
runs apart. `losses.png`: one panel per loss term (every term, auxiliary ones included).
"""

from __future__ import annotations

import math
import re

from boxer.viz.figures import new_figure
from boxer.viz.run_history import RunHistory, Series

RUN_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
STYLES = ("-", "--", ":", "-.")
AUX = re.compile(r"_(\d+|enc_\d+|o2m|dn)(_\d+)?$")  # loss_ce_3, loss_bbox_enc_0, loss_ce_o2m, ...


def main_terms(history: RunHistory) -> list[str]:
    """Loss terms of the last decoder layer (no auxiliary suffix), total `loss` excluded."""
    return [t for t in history.losses if t != "loss" and not AUX.search(t)]


def _plot(ax, series: Series, *, minutes: bool, marker: str = "o", **style) -> None:
    x = series.seconds / 60 if minutes else series.iteration
    ax.plot(x, series.value, marker=marker if len(x) < 12 else None, markersize=4, **style)


def _score_keys(runs: list[RunHistory]) -> list[str]:
    keys = []
    for run in runs:
        keys += [k for k in run.scores if k not in keys]
    return keys[:4]


def curves_figure(runs: list[RunHistory]):
    """The overview figure (2 rows x 4 columns) of `runs` overlaid."""
    fig = new_figure(1600, 760)
    axes = fig.subplots(2, 4, sharex="row")  # a lone AP point keeps the run's x range
    terms = []
    for run in runs:
        terms += [t for t in main_terms(run) if t not in terms]
    for row, minutes in enumerate((False, True)):
        units = sorted({run.x_unit for run in runs})
        xlabel = "wall-clock (min)" if minutes else " / ".join(units)
        for r, run in enumerate(runs):
            colour = RUN_COLOURS[r % len(RUN_COLOURS)]
            total = run.losses.get("loss") or run.losses.get("train_loss")
            if total is not None:
                _plot(axes[row, 0], total, minutes=minutes, color=colour, label=run.name)
            for t, term in enumerate(terms):
                if term in run.losses:
                    first = next(i for i, other in enumerate(runs) if term in other.losses)
                    label = term if r == first else None
                    _plot(axes[row, 1], run.losses[term], minutes=minutes, color=f"C{t}",
                          linestyle=STYLES[r % len(STYLES)], label=label)  # fmt: skip
            if run.lr is not None:
                _plot(axes[row, 2], run.lr, minutes=minutes, color=colour, label=run.name)
            for k, key in enumerate(_score_keys(runs)):
                if key in run.scores:
                    _plot(axes[row, 3], run.scores[key], minutes=minutes, color=colour, marker="os^D"[k],
                          linestyle=STYLES[k % len(STYLES)], label=f"{run.name} {key}")  # fmt: skip
        for col, title in enumerate(("loss (total)", "loss terms (last layer)", "learning rate", "score")):
            ax = axes[row, col]
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(xlabel, fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    if len(runs) > 1:
        fig.suptitle("line style in 'loss terms': " + ", ".join(
            f"{STYLES[i % len(STYLES)]} {run.name}" for i, run in enumerate(runs)), fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def losses_figure(runs: list[RunHistory]):
    """Every loss term against iterations, a panel each, runs overlaid."""
    terms = []
    for run in runs:
        terms += [t for t in run.losses if t not in terms]
    cols = min(4, max(1, len(terms)))
    rows = max(1, math.ceil(len(terms) / cols))
    fig = new_figure(400 * cols, 260 * rows + 20)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, term in enumerate(terms):
        ax = axes[i // cols, i % cols]
        for r, run in enumerate(runs):
            if term in run.losses:
                _plot(ax, run.losses[term], minutes=False, color=RUN_COLOURS[r % len(RUN_COLOURS)],
                      label=run.name)  # fmt: skip
        ax.set_title(term, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(runs) > 1 and i == 0:
            ax.legend(fontsize=7)
    for j in range(len(terms), rows * cols):
        axes[j // cols, j % cols].set_axis_off()
    fig.tight_layout()
    return fig


def series_json(run: RunHistory) -> dict:
    """The curves of `run` as plain lists (the figure's data file)."""

    def dump(s: Series) -> dict:
        return {"iteration": s.iteration.tolist(), "seconds": s.seconds.tolist(), "value": s.value.tolist()}

    return {
        "run": str(run.path),
        "losses": {k: dump(v) for k, v in run.losses.items()},
        "lr": dump(run.lr) if run.lr is not None else None,
        "scores": {k: dump(v) for k, v in run.scores.items()},
    }
