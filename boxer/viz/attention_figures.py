"""Figures of box-attention: a grid of panels, a row per layer and a column per feature level.

Decoder figure: one per detection; every panel shows the image, the detection's box (green), the
query's reference window (its proposal, white dashed), each head's transformed window at that
level (one colour per head) and the head's m x m sampling points (opacity = weight). Mask models
add a last column with the predicted mask. Encoder figure: the same for the token under a pixel
(the query token of one level attends to every level).
"""

from __future__ import annotations

import numpy as np

from boxer.viz.box_attention import AttentionData
from boxer.viz.figures import head_colour, new_figure
from boxer.viz.panels import draw_attention, draw_window, show_image

PANEL_PX = 220  # side of one panel's image area
MARGIN_PX = 24  # room for a panel title


def _grid(rows: int, cols: int, header_px: int = 56):
    """A figure of rows x cols panels and its axes [rows][cols]."""
    width, height = cols * (PANEL_PX + 8) + 8, rows * (PANEL_PX + MARGIN_PX) + header_px
    fig = new_figure(width, height)
    axes = []
    for r in range(rows):
        row = []
        for c in range(cols):
            left = (8 + c * (PANEL_PX + 8)) / width
            bottom = 1 - (header_px + r * (PANEL_PX + MARGIN_PX) + MARGIN_PX + PANEL_PX) / height
            row.append(fig.add_axes((left, bottom, PANEL_PX / width, PANEL_PX / height)))
        axes.append(row)
    return fig, axes


def _legend(fig, heads: int, title: str, m: int, *, detection: bool) -> None:
    """Three header lines: the title, what is drawn, the head colours."""
    top = fig.bbox.height
    fig.text(8 / fig.bbox.width, 1 - 4 / top, title, va="top", ha="left", fontsize=9)
    what = "green: detection; " if detection else ""
    what += f"white dashed: reference window; colours: each head's window and {m}x{m} sampling points "
    fig.text(8 / fig.bbox.width, 1 - 22 / top, what + "(opacity = weight)", va="top", ha="left", fontsize=7)
    for h in range(heads):
        fig.text((8 + 46 * h) / fig.bbox.width, 1 - 38 / top, f"head {h}", va="top", ha="left",
                 fontsize=7, color=head_colour(h))  # fmt: skip


def _point_size(m: int) -> float:
    return 30.0 if m <= 4 else 4.0


def attention_grid(
    image: np.ndarray,
    data: AttentionData,
    index: int,
    *,
    strides: list[int],
    title: str,
    row_name: str = "layer",
    box: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    pixel: tuple[float, float] | None = None,
):
    """The figure of query `index` of `data` (rows: `data.layers`, columns: levels).

    Args:
        image: uint8 [h0, w0, 3], the file's pixels.
        data: gathered attention (pixels).
        index: which query of `data`.
        strides: input stride of each level (column titles).
        title: first header line.
        row_name: what a row is ("layer", "encoder layer").
        box: xyxy pixels of the detection (drawn green), or None.
        mask: bool [h0, w0] predicted mask (an extra column), or None.
        pixel: (x, y) of the query pixel (a white cross), or None.
    """
    Y, H, L = data.windows.shape[1:4]
    m = data.weights.shape[-1]
    fig, axes = _grid(Y, L + (mask is not None))
    _legend(fig, H, title, m, detection=box is not None)
    for r, layer in enumerate(data.layers):
        for level in range(L):
            ax = axes[r][level]
            show_image(ax, image)
            if box is not None:
                draw_window(ax, box, colour=(0.2, 1.0, 0.2), linewidth=1.0)
            draw_attention(
                ax,
                reference=data.reference[index, r],
                windows=data.windows[index, r, :, level],
                points=data.points[index, r, :, level],
                weights=data.weights[index, r, :, level],
                point_size=_point_size(m),
            )
            if pixel is not None:
                ax.plot([pixel[0]], [pixel[1]], marker="+", color="white", markersize=10, mew=2)
            share = data.weights[index, r, :, level].sum() / H  # this level's share of the attention
            ax.set_title(f"{row_name} {layer}, level {level} (/{strides[level]}), weight {share:.2f}",
                         fontsize=7)  # fmt: skip
        if mask is not None:
            ax = axes[r][L]
            show_image(ax, image)
            ax.imshow(np.ma.masked_where(~mask, mask), extent=(0, mask.shape[1], mask.shape[0], 0),
                      cmap="autumn", alpha=0.5, interpolation="nearest")  # fmt: skip
            ax.set_title("predicted mask", fontsize=7)
    return fig
