"""COCO evaluation speed: faster-coco-eval (what `boxer.evaluation.CocoEvaluator` uses) vs pycocotools.

Synthetic but COCO-shaped: `--images` images of 640x480 with 3..12 ground-truth boxes each over 80
categories, and `--dets` detections in all (jittered GT copies plus random boxes, random scores).
Each library runs loadRes + evaluate + accumulate + summarize on the same records; the table shows
seconds, the speed-up and the largest difference between the 12 stats (parity).

    .venv/bin/python benchmarks/coco_eval.py            # 500 images, 50k detections, bbox and segm
    .venv/bin/python benchmarks/coco_eval.py --images 100 --dets 5000

Writes benchmarks/results/coco_eval.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

RESULTS = Path(__file__).resolve().parent / "results" / "coco_eval.json"
W, H = 640, 480


def _rect_rle(box: list[float]) -> dict:
    x, y, w, h = box
    mask = np.zeros((H, W), dtype=np.uint8, order="F")
    mask[int(y) : int(y + h) + 1, int(x) : int(x + w) + 1] = 1
    rle = mask_utils.encode(mask)
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def make_data(n_images: int, n_dets: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO ground-truth dict and detection records (bbox and rectangle RLE segmentation)."""
    rng = np.random.default_rng(seed)
    images = [
        {"id": i + 1, "file_name": f"{i + 1:06d}.jpg", "width": W, "height": H} for i in range(n_images)
    ]
    anns = []
    for im in images:
        for _ in range(int(rng.integers(3, 13))):
            w, h = rng.uniform(8, 300), rng.uniform(8, 250)
            box = [rng.uniform(0, W - w), rng.uniform(0, H - h), w, h]
            cat = int(rng.integers(1, 81))
            anns.append(
                {"id": len(anns) + 1, "image_id": im["id"], "category_id": cat, "bbox": box, "area": w * h}
                | {"iscrowd": 0, "segmentation": _rect_rle(box)}
            )
    per_image = n_dets // n_images
    dets = []
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    for im in images:
        for k in range(per_image):
            gt = by_image[im["id"]][k % len(by_image[im["id"]])]
            x, y, w, h = gt["bbox"]
            if k < 2 * len(by_image[im["id"]]):  # near-duplicates of GT, the rest random
                box = [
                    x + rng.normal(0, 4),
                    y + rng.normal(0, 4),
                    w * rng.uniform(0.85, 1.15),
                    h * rng.uniform(0.85, 1.15),
                ]
                cat = gt["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 81))
            else:
                w, h = rng.uniform(8, 300), rng.uniform(8, 250)
                box, cat = [rng.uniform(0, W - w), rng.uniform(0, H - h), w, h], int(rng.integers(1, 81))
            box = [max(0.0, box[0]), max(0.0, box[1]), box[2], box[3]]
            dets.append({"image_id": im["id"], "category_id": cat, "bbox": box, "score": float(rng.random())})
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": str(c)} for c in range(1, 81)],
    }
    return gt, dets


def _records(dets: list[dict], iou_type: str) -> list[dict]:
    if iou_type == "bbox":
        return [dict(d) for d in dets]
    return [
        {k: v for k, v in d.items() if k != "bbox"} | {"segmentation": _rect_rle(d["bbox"])} for d in dets
    ]


def run_pycocotools(gt: dict, records: list[dict], iou_type: str) -> tuple[float, np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        start = time.perf_counter()
        ev = COCOeval(coco_gt, coco_gt.loadRes([dict(r) for r in records]), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - start, np.asarray(ev.stats[:12])


def run_faster(gt: dict, records: list[dict], iou_type: str) -> tuple[float, np.ndarray]:
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(json.loads(json.dumps(gt)))
    start = time.perf_counter()
    ev = COCOeval_faster(
        coco_gt, coco_gt.loadRes([dict(r) for r in records]), iou_type, print_function=lambda *a: None
    )
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return time.perf_counter() - start, np.asarray(ev.stats[:12])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--dets", type=int, default=50_000)
    parser.add_argument("--iou-types", nargs="+", default=["bbox", "segm"], choices=["bbox", "segm"])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    gt, dets = make_data(args.images, args.dets)
    rows = []
    for iou_type in args.iou_types:
        records = _records(dets, iou_type)
        t_ref, s_ref = run_pycocotools(gt, records, iou_type)
        t_fast, s_fast = run_faster(gt, records, iou_type)
        rows.append(
            {
                "iou_type": iou_type,
                "images": args.images,
                "detections": len(records),
                "gt_instances": len(gt["annotations"]),
                "pycocotools_s": round(t_ref, 3),
                "faster_coco_eval_s": round(t_fast, 3),
                "speedup": round(t_ref / t_fast, 2),
                "max_abs_stat_diff": float(np.abs(s_ref - s_fast).max()),
                "AP": float(s_fast[0]),
            }
        )

    head = ("iou", "images", "dets", "pycocotools s", "faster s", "speed-up", "max |dstat|")
    print("{:<5} {:>6} {:>7} {:>14} {:>9} {:>9} {:>12}".format(*head))
    for r in rows:
        print(
            f"{r['iou_type']:<5} {r['images']:>6} {r['detections']:>7} {r['pycocotools_s']:>14.2f} "
            f"{r['faster_coco_eval_s']:>9.2f} {r['speedup']:>8.1f}x {r['max_abs_stat_diff']:>12.1e}"
        )
    result = {
        "benchmark": "coco_eval",
        "command": "python benchmarks/coco_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),  # the CPU may be shared
        "python": platform.python_version(),
        "rows": rows,
    }
    out = Path(args.out)
    from boxer.engine.checkpoint import atomic_write_text

    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
