"""AP-vs-iteration curves of a FashionScenes recipe, for tuning the CPU demo without touching val.

Trains a detector on FashionScenes train (the engine's `Trainer`, boxer/engine/trainer.py) and
evaluates every `--every` iterations on a *tuning* set: scenes generated with another seed (their
train split, so Fashion-MNIST train items only), e.g.

    .venv/bin/boxer data fashion-scenes --out /tmp/fs_tune --train 200 --val 10 --seed 7
    taskset -c 0 .venv/bin/python benchmarks/demo_tuning.py --tag E --threads 1 --no-augment --amp bf16 \
        --kw "{'pretrained_backbone': 'PATH', 'backbone_kwargs': {'frozen_stages': 2}}" \
        --lr 4e-4 --lr-backbone 1e-4 --iters 600 --every 200

It prints one line per evaluation and writes benchmarks/results/demo_tuning/<tag>.json (the
arguments, the machine, and the curve: iteration, training seconds, AP, AP50, smoothed loss) plus
a class-agnostic AP50 at the end (the gap to AP50 is the classification error).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import platform
import time
from pathlib import Path

import torch

import boxer
from boxer.data import collate_detection
from boxer.engine.checkpoint import atomic_write_text
from boxer.engine.config import TrainConfig
from boxer.engine.data import Split, coco_dataset
from boxer.engine.detection import DetectionTask
from boxer.engine.distributed import init_distributed
from boxer.engine.evaluate import evaluate_detector, predict_batches
from boxer.engine.precision import autocast
from boxer.engine.task import LoopConfig
from boxer.engine.trainer import Trainer


def _split(root: str, split: str) -> Split:
    return Split(split, Path(root) / split, Path(root) / "annotations" / f"instances_{split}.json")


def agnostic_ap50(model, dataset) -> float:
    """Box AP50 with every class merged (COCOeval useCats=0)."""
    from faster_coco_eval import COCO, COCOeval_faster

    loader = torch.utils.data.DataLoader(dataset, batch_size=8, collate_fn=collate_detection)
    preds = predict_batches(model, loader, torch.device("cpu"), "none")
    gt = COCO(str(dataset.ann_file))
    results = []
    for image_id, p in preds.items():
        boxes = p["boxes"].clone()
        boxes[:, 2:] -= boxes[:, :2]
        for b, s, lab in zip(boxes.tolist(), p["scores"].tolist(), p["labels"].tolist()):
            results.append({"image_id": image_id, "category_id": dataset.cat_ids[lab], "bbox": b, "score": s})
    ev = COCOeval_faster(gt, gt.loadRes(results), "bbox")
    ev.params.useCats = 0
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


def step_gflops(model, batch, amp: str) -> float:
    """GFLOPs of one training step (forward + backward) on `batch`, torch's counter (2 per multiply-add)."""
    from boxer.benchmarking.flops import count_flops

    def step():
        with autocast("cpu", amp):
            losses = model(batch.images, batch.pad_mask, batch.targets)
        losses["loss"].backward()
        model.zero_grad(set_to_none=True)

    return count_flops(step) / 1e9


class LoaderBatches:
    """The batches of a plain shuffled DataLoader, one pass per epoch (the order the global RNG gives)."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def batches_per_epoch(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, start: int = 0):
        return iter(self.loader)


class TuningTask(DetectionTask):
    """Detection on the engine's Trainer, evaluated on the tuning scenes every `every` iterations;
    counts the seconds of the steps alone (not data loading, not evaluation) and a smoothed loss."""

    def __init__(self, cfg, model, train_set, *, collate_fn, loader, tune, every: int) -> None:
        super().__init__(cfg, model, train_set, collate_fn=collate_fn)
        self.loader, self.tune, self.every = loader, tune, every
        self.info = init_distributed("cpu")
        self.train_s, self.loss_avg, self.curve, self.start = 0.0, 0.0, [], 0.0

    def train_batches(self, info) -> LoaderBatches:
        return LoaderBatches(self.loader)

    def losses(self, net, batch, device):
        self.start = time.perf_counter()
        return super().losses(net, batch, device)

    def after_step(self, trainer, values) -> None:
        it, last = trainer.state.iteration, trainer.cfg.max_iters
        self.train_s += time.perf_counter() - self.start
        self.loss_avg = values["loss"] if it == 1 else 0.95 * self.loss_avg + 0.05 * values["loss"]
        if it % self.every == 0 or it == last:
            self.model.eval()
            with contextlib.redirect_stdout(io.StringIO()):
                m = evaluate_detector(
                    self.model, self.tune, info=self.info, collate_fn=collate_detection, batch_size=8
                )
            self.model.train()
            row = {"it": it, "train_s": round(self.train_s, 1), "AP": round(m["bbox/AP"], 4),
                   "AP50": round(m["bbox/AP50"], 4), "loss": round(self.loss_avg, 3)}  # fmt: skip
            self.curve.append(row)
            print(row, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/fashion-scenes", help="FashionScenes folder (its train split)")
    p.add_argument("--tune", default="/tmp/fs_tune", help="tuning scenes folder (its train split)")
    p.add_argument("--model", default="boxer2d_r18_lite")
    p.add_argument("--kw", default="{}", help="model keywords, a Python dict literal")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lr-backbone", type=float, default=2e-4)
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--drop", type=float, default=0.8, help="LR x0.1 at this fraction of --iters")
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--no-augment", action="store_true", help="the eval resize only (no DETR recipe)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--tag", default="run")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and data order")
    p.add_argument("--save", help="write the trained weights here (.safetensors), e.g. for a diagnosis")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    size = dict(image_size=a.size, max_size=a.size, with_masks=False)
    train = coco_dataset(_split(a.data, "train"), train=True, augment=not a.no_augment, **size)
    tune = coco_dataset(_split(a.tune, "train"), train=False, **size)
    model = boxer.create_model(a.model, num_classes=train.num_classes, **ast.literal_eval(a.kw))
    cfg = TrainConfig.from_dict(
        dict(lr=a.lr, lr_backbone=a.lr_backbone, warmup_iters=a.warmup, warmup_factor=0.01,
             lr_steps=[int(a.iters * a.drop)], lr_step_unit="iter")
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        train, batch_size=a.batch_size, shuffle=True, collate_fn=collate_detection, num_workers=1,
        drop_last=True, persistent_workers=True,
    )  # fmt: skip
    model.train()
    gflops = step_gflops(model, next(iter(loader)), a.amp)
    task = TuningTask(
        cfg, model, train, collate_fn=collate_detection, loader=loader, tune=tune, every=a.every
    )
    loop = LoopConfig(
        max_iters=a.iters, amp=a.amp, device="cpu", clip_max_norm=0.1, eval_every=0, progress=False
    )
    trainer = Trainer(task, loop, run_dir=None)
    trainer.fit()
    it, train_s, curve = trainer.state.iteration, task.train_s, task.curve
    model.eval()
    if a.save:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.save)
    agnostic = agnostic_ap50(model, tune)
    per_step = train_s / max(it, 1)
    print(f"class-agnostic AP50 {agnostic:.3f}, {gflops:.1f} GFLOPs (2 per MAC), {per_step:.3f} s per step")
    out = Path("benchmarks/results/demo_tuning") / f"{a.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "args": vars(a), "curve": curve, "agnostic_AP50": round(agnostic, 4),
        "gflops_per_step": round(gflops, 1), "s_per_step": round(train_s / max(it, 1), 3),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "torch": torch.__version__,
    }  # fmt: skip
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
