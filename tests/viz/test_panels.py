"""Panels (`boxer/viz/panels.py`): windows and sampling points land on their pixels."""

from __future__ import annotations

import numpy as np

from boxer.viz.panels import render_exact

RED = np.array([255, 0, 0])


def _render(points, weights):
    image = np.zeros((80, 100, 3), dtype=np.uint8)
    return render_exact(
        image,
        reference=None,
        windows=np.array([[20.0, 10.0, 60.0, 50.0]]),
        points=np.asarray(points, dtype=float).reshape(1, 1, -1, 2),
        weights=np.asarray(weights, dtype=float).reshape(1, 1, -1),
    )


def _lit(pixel) -> bool:
    return int(pixel.max()) > 60


def test_window_edges_land_on_their_pixels(monkeypatch):
    monkeypatch.setattr("boxer.viz.panels.head_colour", lambda h: (1.0, 0.0, 0.0))
    out = _render([[80.5, 70.5]], [1.0])
    assert out.shape == (80, 100, 3)
    rows = np.nonzero(np.array([_lit(out[r, 40]) for r in range(80)]))[0]  # a column through the box
    cols = np.nonzero(np.array([_lit(out[30, c]) for c in range(75)]))[0]  # a row through the box
    assert abs(rows.min() - 10) <= 1 and abs(rows.max() - 50) <= 1
    assert abs(cols.min() - 20) <= 1 and abs(cols.max() - 60) <= 1
    assert not _lit(out[30, 40]) and not _lit(out[5, 5])  # inside and outside stay dark


def test_points_land_on_their_pixel_and_weight_is_opacity(monkeypatch):
    monkeypatch.setattr("boxer.viz.panels.head_colour", lambda h: (1.0, 0.0, 0.0))
    out = _render([[80.5, 70.5], [30.5, 30.5]], [1.0, 0.25])
    lit = np.argwhere(out[:, 70:, 0] > 60)  # the strong point, away from the window
    centre = lit.mean(0) + [0, 70]
    assert np.abs(centre - [70, 80]).max() <= 1.0  # (row, column) of pixel (x=80, y=70)
    assert out[70, 80, 0] > 200 and out[70, 80, 1] < 60  # opaque red
    assert 30 < out[30, 30, 0] < 120  # a quarter of the largest weight: a faint red
