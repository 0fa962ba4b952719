"""One attention panel: the image, the reference window, per-head windows and sampling points.

Axes use the image's pixel coordinates (continuous: pixel (i, j) covers [j, j + 1) x [i, i + 1),
y downwards), so a window or point given in pixels lands on that pixel of the picture. Sampling
points take their head's colour; their opacity is the attention weight divided by the largest
weight in the panel (a uniform 2 x 2 grid over 4 levels gives 1/16 per point, which would be
nearly invisible as a raw opacity).
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from boxer.viz.figures import head_colour, new_figure


def show_image(ax, image: np.ndarray) -> None:
    """Draws `image` (uint8 [h, w, 3] or float [h, w]) filling axes in pixel coordinates."""
    h, w = image.shape[:2]
    ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest", cmap="gray")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_window(ax, xyxy, *, colour, linewidth: float = 1.0, linestyle: str = "-") -> None:
    """An axis-aligned rectangle (x0, y0, x1, y1) in pixels."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    ax.add_patch(
        Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=linewidth,
                  linestyle=linestyle)
    )  # fmt: skip


def draw_points(ax, points: np.ndarray, alphas: np.ndarray, *, colour, size: float = 12.0) -> None:
    """Sampling points Tensor[..., 2] (x, y) in pixels with opacities [...] in [0, 1]."""
    xy = points.reshape(-1, 2)
    rgba = np.zeros((len(xy), 4))
    rgba[:, :3] = colour
    rgba[:, 3] = np.clip(alphas.reshape(-1), 0.0, 1.0)
    edges = np.zeros_like(rgba)
    edges[:, 3] = rgba[:, 3]  # a black rim, as opaque as the point: visible on light and dark images
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=rgba, edgecolors=edges, linewidths=0.6)


def draw_attention(
    ax,
    *,
    reference: np.ndarray | None,
    windows: np.ndarray,
    points: np.ndarray,
    weights: np.ndarray,
    point_size: float = 12.0,
) -> None:
    """The windows and points of every head at one level.

    Args:
        ax: axes already showing the image (`show_image`).
        reference: (x0, y0, x1, y1) of the query's reference window in pixels, or None.
        windows: [H, 4] xyxy pixels, one transformed window per head.
        points: [H, m, m, 2] sampling points (x, y) in pixels.
        weights: [H, m, m] attention weights.
        point_size: marker area in points^2.
    """
    top = float(weights.max()) if weights.size and weights.max() > 0 else 1.0
    for head in range(windows.shape[0]):
        colour = head_colour(head)
        draw_window(ax, windows[head], colour=colour)
        draw_points(ax, points[head], weights[head] / top, colour=colour, size=point_size)
    if reference is not None:
        draw_window(ax, reference, colour=(1.0, 1.0, 1.0), linewidth=1.5, linestyle="--")


def render_exact(image: np.ndarray, **attention) -> np.ndarray:
    """The panel at exactly the image's size, as an RGB uint8 array [h, w, 3] (for checks).

    Args:
        image: uint8 [h, w, 3].
        attention: the keywords of `draw_attention`.
    """
    h, w = image.shape[:2]
    fig = new_figure(w, h)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    show_image(ax, image)
    draw_attention(ax, **attention)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return rgba[..., :3].copy()
