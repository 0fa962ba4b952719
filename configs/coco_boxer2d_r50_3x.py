"""BoxeR-2D R50, COCO 2017 detection, 3x schedule (BOXER_SPEC.md §5.2).

270k iterations at 16 images per step, LR x0.1 at 210k and 250k, linear warmup of 1000 iterations
from 0.001x; AdamW lr 2e-4 / backbone 2e-5 / window offsets 0.1x, wd 1e-4, clip 0.1; shorter side
800, max 1333. `batch_size` is per process: 8 GPUs x 2 = 16. On 4 GPUs use `--set accum_steps=2`.

    torchrun --nproc_per_node 8 -m boxer.cli.main train --config coco_boxer2d_r50_3x --data /data/coco
"""

CONFIG = dict(
    model="boxer2d_r50",
    model_kwargs={"pretrained_backbone": True, "lr_linear_box_mult": 0.1},
    image_size=800,
    max_size=1333,
    batch_size=2,
    workers=4,
    max_iters=270_000,
    lr_steps=[210_000, 250_000],
    lr_step_unit="iter",
    warmup_iters=1000,
    warmup_factor=0.001,
    lr=2e-4,
    lr_backbone=2e-5,
    weight_decay=1e-4,
    clip_max_norm=0.1,
    amp="auto",
    eval_every=4,
    ckpt_every_iters=5000,
)
