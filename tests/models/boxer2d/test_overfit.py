"""Overfitting two FashionScenes images (slow): the detector and the mask model can learn.

A plain AdamW loop (no engine), evaluated with the COCO evaluator on the same two images. The CPU
variants run with 30 queries (scenes hold at most 4 objects) to keep the steps cheap. Measured
2026-11-22 on the shared 2-core machine: both reach AP50 1.0 (box and mask) by step 150.
"""

from __future__ import annotations

import pytest
import torch

import boxer
from boxer.data import CocoDetection, build_transforms, collate_detection, generate_fashion_scenes
from boxer.evaluation import CocoEvaluator

pytestmark = pytest.mark.slow

SIZE = 128


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion_scenes") / "fs"
    ann = generate_fashion_scenes(root, train=2, val=0, size=SIZE, max_objects=4, seed=0, workers=1)["train"]
    return root / "train", ann


def _overfit(name: str, scenes, *, max_steps: int, goals: dict[str, float]) -> dict[str, float]:
    """Trains until every metric in `goals` is reached (checked every 25 steps) or `max_steps`."""
    images_dir, ann = scenes
    with_masks = name.endswith("_mask")
    ds = CocoDetection(
        images_dir, ann, transforms=build_transforms(False, base_size=SIZE), with_masks=with_masks
    )
    batch = collate_detection([ds[0], ds[1]])
    torch.manual_seed(0)
    model = boxer.create_model(name, num_classes=ds.num_classes, num_queries=30)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    stats: dict[str, float] = {}
    for step in range(1, max_steps + 1):
        model.train()
        losses = model(batch.images, batch.pad_mask, batch.targets)
        assert torch.isfinite(losses["loss"]), {k: float(v) for k, v in losses.items()}
        opt.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        if step % 25 == 0 and step >= 75:
            stats = _evaluate(model, batch, ds, ann, with_masks)
            if all(stats[k] >= v for k, v in goals.items()):
                break
    return stats


def _evaluate(model, batch, ds, ann, with_masks: bool) -> dict[str, float]:
    model.eval()
    dets = model.predict(batch.images, batch.pad_mask, batch.targets)
    iou_types = ("bbox", "segm") if with_masks else ("bbox",)
    evaluator = CocoEvaluator(ann, iou_types=iou_types, cat_ids=ds.cat_ids, verbose=False)
    evaluator.update({t["image_id"]: d for t, d in zip(batch.targets, dets)})
    return evaluator.evaluate()


def test_detector_overfits_two_images(scenes):
    stats = _overfit("boxer2d_r18_lite", scenes, max_steps=250, goals={"bbox/AP50": 0.9})
    assert stats["bbox/AP50"] >= 0.9, stats


def test_mask_model_overfits_two_images(scenes):
    goals = {"bbox/AP50": 0.9, "segm/AP50": 0.8}
    stats = _overfit("boxer2d_r18_lite_mask", scenes, max_steps=250, goals=goals)
    assert stats["bbox/AP50"] >= 0.9 and stats["segm/AP50"] >= 0.8, stats
