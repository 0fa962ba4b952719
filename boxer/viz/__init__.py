"""`boxer viz`: pictures of what the models attend to and how training went.

One file per concern: `recorder.py` (forward hooks on the box-attention modules), `geometry.py`
(normalised windows -> image pixels), `panels.py` (one matplotlib panel: image, windows, sampling
points), `box_attention.py` (the BoxeR-2D decoder / encoder grids and their data dump) and
`figures.py` (the Agg backend and PNG writing). Every figure is also written as data (NPZ / JSON).
"""

from __future__ import annotations

# `boxer viz mixer`'s default row of mixers (here, torch-free, for the CLI's help).
MIXER_ZOO = ("mhsa", "mhsa_rel", "window", "window_shifted", "local", "pvt", "nonlocal")
