"""BoxeR-2D R50, COCO 2017 detection, 50 epochs at batch 32, LR x0.1 at epoch 40, no warmup.

BOXER_SPEC.md §5.2 ("50-epoch" configs). 8 GPUs x 4 images = 32 per step.

    torchrun --nproc_per_node 8 -m boxer.cli.main train --config coco_boxer2d_r50_50ep --data /data/coco
"""

CONFIG = dict(
    model="boxer2d_r50",
    model_kwargs={"pretrained_backbone": True},
    image_size=800,
    max_size=1333,
    batch_size=4,
    workers=4,
    epochs=50,
    lr_steps=[40],
    lr_step_unit="epoch",
    warmup_iters=0,
    clip_max_norm=0.1,
    amp="auto",
    eval_every=5,
    ckpt_every_iters=5000,
)
