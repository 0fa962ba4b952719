"""The CPU demo: BoxeR-2D lite on FashionScenes, on a 2-core CPU within the demo's time budget.

Settings chosen by hand on this machine (see docs/training.md for the AP-vs-time observations).

    boxer train --config fashion_scenes_demo --data data/fashion-scenes --out runs/demo
"""

CONFIG = dict(
    model="boxer2d_r18_lite",
    model_kwargs={},
    image_size=256,
    max_size=256,
    batch_size=4,
    workers=1,
    epochs=12,
    lr=2e-4,
    lr_backbone=2e-4,
    lr_steps=[10],
    lr_step_unit="epoch",
    warmup_iters=50,
    warmup_factor=0.01,
    clip_max_norm=0.1,
    amp="none",
    eval_every=4,
)
