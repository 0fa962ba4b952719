"""Speed of `boxer data check`: the full check (every image decoded) against the JSON checks alone.

    .venv/bin/boxer data fashion-scenes --out data/fashion-scenes --seed 0   # if not there yet
    .venv/bin/python benchmarks/doctor.py --data data/fashion-scenes

For each split, times `boxer.data.doctor.check_dataset` with the image folder (what `boxer data
check`, `boxer train` and `boxer eval` run) and without it (annotation checks only), best of
`--repeat`, and prints images per second. Writes benchmarks/results/doctor.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

from boxer.data.doctor import check_dataset

RESULTS = Path(__file__).resolve().parent / "results" / "doctor.json"


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/fashion-scenes", help="COCO layout: SPLIT/, annotations/")
    p.add_argument("--splits", default="train,val")
    p.add_argument("--workers", type=int, default=8, help="decoding threads (the doctor's default)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    rows = []
    print(f"{'split':<8}{'images':>8}{'full s':>9}{'JSON s':>9}{'images/s':>10}")
    for split in a.splits.split(","):
        images, ann = Path(a.data) / split, Path(a.data) / "annotations" / f"instances_{split}.json"
        report = check_dataset(images, ann, workers=a.workers)
        full = _best(lambda: check_dataset(images, ann, workers=a.workers), a.repeat)  # noqa: B023
        json_only = _best(lambda: check_dataset(None, ann), a.repeat)  # noqa: B023
        row = {"split": split, "images": report.num_images, "errors": len(report.errors),
               "full_s": round(full, 3), "json_only_s": round(json_only, 3),
               "images_per_s": round(report.num_images / full, 1)}  # fmt: skip
        rows.append(row)
        print(f"{split:<8}{row['images']:>8}{full:>9.2f}{json_only:>9.2f}{row['images_per_s']:>10.0f}")
    record = {
        "benchmark": "doctor", "args": vars(a), "rows": rows,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load": os.getloadavg(),
    }  # fmt: skip
    out = Path(a.out)
    from boxer.engine.checkpoint import atomic_write_text

    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
