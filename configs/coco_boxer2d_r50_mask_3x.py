"""BoxeR-2D R50 instance segmentation, COCO 2017, 3x schedule (BOXER_SPEC.md §5.2).

The detection 3x recipe with the mask variant (instance-attention decoder, residual v1, mask
focal 5 + dice 5). The best checkpoint is picked by box AP; use `--set best_metric=segm/AP` to
pick by mask AP.

    torchrun --nproc_per_node 8 -m boxer.cli.main train --config coco_boxer2d_r50_mask_3x --data /data/coco
"""

CONFIG = dict(
    model="boxer2d_r50_mask",
    model_kwargs={"pretrained_backbone": True},
    image_size=800,
    max_size=1333,
    batch_size=2,
    workers=4,
    max_iters=270_000,
    lr_steps=[210_000, 250_000],
    lr_step_unit="iter",
    warmup_iters=1000,
    warmup_factor=0.001,
    clip_max_norm=0.1,
    amp="auto",
    eval_every=4,
    ckpt_every_iters=5000,
)
