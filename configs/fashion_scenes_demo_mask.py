"""The CPU demo with instance segmentation: BoxeR-2D lite with masks on FashionScenes.

    make demo-masks
    # or: DEMO_CONFIG=fashion_scenes_demo_mask scripts/demo.sh data/fashion-scenes runs/demo-masks

The recipe of `fashion_scenes_demo` (pretrained, partly frozen ResNet-18; 256 px, no augmentation;
bf16; a time-capped schedule) on `boxer2d_r18_lite_mask` (instance-attention decoder with the 14 x 14
grid, residual v2, mask focal + dice). A step costs about 1.5x the box model's, so it gets more time;
the run prints the bbox and segm tables.
"""

import runpy
from pathlib import Path

_BOX = runpy.run_path(str(Path(__file__).with_name("fashion_scenes_demo.py")))["CONFIG"]

CONFIG = dict(
    _BOX,
    model="boxer2d_r18_lite_mask",
    max_iters=1200,
    max_minutes=12.0,
    lr_steps=[960],
)
