"""The CPU demo: BoxeR-2D lite on FashionScenes, within the demo's 15-minute budget on 2 cores.

    boxer train --config fashion_scenes_demo --data data/fashion-scenes --out runs/demo

- Model: `boxer2d_r18_lite` (ResNet-18 frozen BN, 3+3 layers, d 128, 100 queries), trained from
  scratch, so the backbone gets the full learning rate (`lr_backbone` = `lr`); pass
  `--init` or `--set model.pretrained_backbone=PATH` to start from a Fashion-MNIST-pretrained
  ResNet-18 instead.
- Images: FashionScenes are 256x256; the eval short side is 256 and the DETR multi-scale
  augmentation scales with it (boxer.data.build_transforms).
- Length: `max_minutes` caps training whatever the CPU load (training then stops at the next step,
  evaluates once, and writes `last` / `best`); `epochs` is the planned length when the machine is
  quiet. Evaluation runs once at the end (`eval_every` larger than `epochs`).

Not tuned yet: while this was written the 2 cores ran 2-3 other jobs (load 5-9), and a step at
batch 4 / 256 px took 11-15 s instead of the few seconds expected on a quiet machine, so no
AP-vs-time curve could be measured. Tune `epochs` / `image_size` on a quiet machine.
"""

CONFIG = dict(
    model="boxer2d_r18_lite",
    model_kwargs={},
    image_size=256,
    max_size=256,
    batch_size=4,
    workers=1,
    epochs=4,
    max_minutes=10.0,
    lr=2e-4,
    lr_backbone=2e-4,
    warmup_iters=50,
    warmup_factor=0.01,
    lr_steps=[3],
    lr_step_unit="epoch",
    clip_max_norm=0.1,
    amp="none",
    eval_every=100,
    log_every=5,
)
