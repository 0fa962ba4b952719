"""Figures of `run_eval.EvalResult`s: per-class AP bars, precision-recall curves, a confusion matrix.

Several runs share the bar chart (bars side by side) and the PR panels (one colour per run).
Classes without ground truth in val (AP -1) are drawn as empty slots and named "(no GT)".
"""

from __future__ import annotations

import math

import numpy as np

from boxer.viz.figures import new_figure
from boxer.viz.run_curves import RUN_COLOURS
from boxer.viz.run_eval import EvalResult


def per_class_ap_figure(results: list[tuple[str, EvalResult]]):
    """AP50 (top) and AP (bottom) per class, runs side by side."""
    names = results[0][1].class_names
    fig = new_figure(max(700, 70 * len(names) + 160), 620)
    axes = fig.subplots(2, 1)
    width = 0.8 / len(results)
    x = np.arange(len(names))
    for ax, field in zip(axes, ("ap50", "ap")):
        for r, (run, res) in enumerate(results):
            values = getattr(res, field)
            shown = np.where(values >= 0, values, np.nan)
            ax.bar(
                x - 0.4 + width * (r + 0.5), shown, width, color=RUN_COLOURS[r % len(RUN_COLOURS)], label=run
            )
        ax.set_xticks(x)
        no_gt = getattr(results[0][1], field) < 0
        ax.set_xticklabels(
            [f"{n}\n(no GT)" if g else n for n, g in zip(names, no_gt)], fontsize=8, rotation=30
        )
        ax.set_ylim(0, 1)
        ax.set_ylabel("AP50" if field == "ap50" else "AP (IoU .50:.95)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("per-class AP on val", fontsize=10)
    fig.tight_layout()
    return fig


def pr_figure(results: list[tuple[str, EvalResult]]):
    """Precision against recall at IoU 0.5, a panel per class (COCO's 101 interpolated points)."""
    names = results[0][1].class_names
    cols = min(5, len(names))
    rows = math.ceil(len(names) / cols)
    fig = new_figure(260 * cols, 240 * rows + 30)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, name in enumerate(names):
        ax = axes[k // cols, k % cols]
        for r, (run, res) in enumerate(results):
            p = res.precision50[:, k]
            if (p >= 0).any():
                ax.plot(res.recall, np.clip(p, 0, None), color=RUN_COLOURS[r % len(RUN_COLOURS)],
                        label=f"{run} AP50 {res.ap50[k]:.2f}")  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper right")
        else:
            ax.text(0.5, 0.5, "no ground truth", ha="center", fontsize=8)
    for j in range(len(names), rows * cols):
        axes[j // cols, j % cols].set_axis_off()
    fig.suptitle("precision-recall at IoU 0.5 (x: recall, y: precision)", fontsize=10)
    fig.tight_layout()
    return fig


def matrix_figure(
    counts: np.ndarray, rows: list[str], cols: list[str], *, title: str, xlabel: str, ylabel: str
):
    """A count matrix: counts in the cells, colour = the row's share (rows normalised)."""
    fig = new_figure(60 * len(cols) + 200, 60 * len(rows) + 140)
    ax = fig.add_subplot(1, 1, 1)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(name: str, res: EvalResult, *, score: float):
    """The detection confusion matrix of one run (rows + "no object", columns + "missed")."""
    return matrix_figure(
        res.confusion, [*res.class_names, "no object"], [*res.class_names, "missed"],
        title=f"{name}: detections of score >= {score:g} matched at IoU >= 0.5",
        xlabel="predicted class", ylabel="true class",
    )  # fmt: skip
