"""Box AP of a trained BoxeR-2D with and without class-wise NMS at inference (`nms_iou`).

An under-trained one-to-one head still places several queries on one object; this measures what
suppressing them is worth, threshold by threshold, on a split that is not reported (the demo's
tuning scenes, never FashionScenes val):

    .venv/bin/python benchmarks/postprocess_nms.py --checkpoint runs/demo/best --data /tmp/fs_tune \
        --split train --out benchmarks/results/postprocess_nms.json
    .venv/bin/python benchmarks/postprocess_nms.py --weights W.safetensors --model boxer2d_r18_lite \
        --kw "{'box_refine': True}" --data /tmp/fs_tune --split train   # weights of demo_tuning.py --save

Prints AP, AP50 and per-class AP50 per threshold ("none" = the paper's post-processing) and writes
the table, the command, the machine, the date and the load to --out (JSON).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import boxer
from boxer.data import collate_detection
from boxer.engine.checkpoint import atomic_write_text
from boxer.engine.data import Split, coco_dataset
from boxer.engine.distributed import init_distributed
from boxer.engine.evaluate import evaluate_detector


def _model(a: argparse.Namespace, split: Split) -> tuple[torch.nn.Module, object]:
    """The model in eval mode and the split's dataset at the model's image size (read once)."""
    if a.checkpoint:
        from boxer.engine.runner import _sizes_of, load_detector

        model, config = load_detector(a.checkpoint, torch.device("cpu"))
        size = _sizes_of(config).image_size
        dataset = coco_dataset(split, train=False, image_size=size, max_size=size, with_masks=False)
        return model.eval(), dataset
    from safetensors.torch import load_file

    dataset = coco_dataset(split, train=False, image_size=a.size, max_size=a.size, with_masks=False)
    model = boxer.create_model(a.model, num_classes=dataset.num_classes, **ast.literal_eval(a.kw))
    model.load_state_dict(load_file(a.weights))
    return model.eval(), dataset


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a boxer checkpoint directory (RUN/best, RUN/last)")
    p.add_argument("--weights", help="or a state dict (.safetensors) of --model built with --kw")
    p.add_argument("--model", default="boxer2d_r18_lite")
    p.add_argument("--kw", default="{}", help="model keywords of --weights, a Python dict literal")
    p.add_argument("--size", type=int, default=256, help="image size of --weights")
    p.add_argument("--data", required=True, help="COCO-layout folder")
    p.add_argument("--split", default="train")
    p.add_argument("--thresholds", default="none,0.4,0.5,0.6,0.7,0.8")
    p.add_argument("--num-select", default="", help="also try these top-k sizes before the NMS, e.g. 100,300")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/postprocess_nms.json")
    a = p.parse_args()
    if bool(a.checkpoint) == bool(a.weights):
        p.error("give exactly one of --checkpoint and --weights")
    if a.threads:
        torch.set_num_threads(a.threads)
    load = os.getloadavg()
    split = Split(a.split, Path(a.data) / a.split, Path(a.data) / "annotations" / f"instances_{a.split}.json")
    model, dataset = _model(a, split)
    info = init_distributed("cpu")
    rows = []
    sizes = [int(k) for k in a.num_select.split(",")] if a.num_select else [model.num_select]
    for k, text in [(k, t) for k in sizes for t in a.thresholds.split(",")]:
        model.num_select, model.nms_iou = k, None if text == "none" else float(text)
        with contextlib.redirect_stdout(io.StringIO()):
            m = evaluate_detector(model, dataset, info=info, collate_fn=collate_detection, batch_size=8,
                                  progress=False)  # fmt: skip
        per_class = {k.split("/", 2)[2]: round(v, 4) for k, v in m.items() if k.startswith("bbox/AP50/")}
        ap = {name: round(m[f"bbox/{name}"], 4) for name in ("AP", "AP50", "AP75")}
        rows.append({"num_select": k, "nms_iou": text, **ap, "AP50_per_class": per_class})
    names = list(rows[0]["AP50_per_class"])
    head = f"{'top-k':>6} {'nms_iou':>8} {'AP':>6} {'AP50':>6} {'AP75':>6}  "
    print(head + " ".join(f"{n[:7]:>7}" for n in names))
    for r in rows:
        cells = " ".join(f"{r['AP50_per_class'][n]:7.3f}" for n in names)
        ap = f"{r['AP']:6.3f} {r['AP50']:6.3f} {r['AP75']:6.3f}"
        print(f"{r['num_select']:>6} {r['nms_iou']:>8} {ap}  {cells}")
    record = {
        "benchmark": "postprocess_nms",
        "command": " ".join(["benchmarks/postprocess_nms.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "load_start": [round(v, 2) for v in load],
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "images": len(dataset),
        "rows": rows,
    }
    atomic_write_text(Path(a.out), json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
