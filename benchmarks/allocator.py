"""End-to-end effect of the CPU allocator setting on `boxer train` and `boxer eval`.

Runs the real CLI in subprocesses, alternating the two glibc settings (A/B/A/B, so that load from
other processes hits both alike):

- `default`: `BOXER_NO_MALLOC_TUNING=1`, MALLOC_* unset (glibc's defaults);
- `tuned`: what the CLI does by itself, `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736`
  (see boxer/engine/allocator.py).

Measures wall time and peak RSS of a short training run (`--iters` optimiser steps of
`--model` on FashionScenes, no evaluation) and of an evaluation pass over the val split with the
resulting checkpoint. Writes benchmarks/results/allocator.json.

    .venv/bin/python benchmarks/allocator.py --data data/fashion-scenes --iters 20 --repeats 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOXER = [sys.executable, "-m", "boxer.cli.main"]
TUNED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def environment(setting: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "BOXER_MALLOC_TUNED"}
    env["BOXER_NO_MALLOC_TUNING"] = "1"  # the script sets the variables itself, both ways
    if setting == "tuned":
        env.update(TUNED)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Runs `cmd`; returns (wall seconds, peak RSS MiB of that process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=False)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="COCO-layout dataset (e.g. FashionScenes)")
    p.add_argument("--model", default="boxer2d_r18_lite", help="model to train and evaluate")
    p.add_argument("--image-size", type=int, default=256, help="train/eval short side")
    p.add_argument("--batch-size", type=int, default=4, help="training batch")
    p.add_argument("--iters", type=int, default=20, help="optimiser steps per training run")
    p.add_argument("--repeats", type=int, default=2, help="A/B rounds")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "allocator.json"))
    args = p.parse_args()
    records: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for setting in ("default", "tuned"):
                run = Path(tmp) / f"{setting}-{r}"
                train = [*BOXER, "train", "--model", args.model, "--data", args.data, "--out", str(run)]
                train += ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
                train += [
                    "--workers",
                    "0",
                    "--set",
                    f"max_iters={args.iters}",
                    "eval_every=0",
                    "progress=false",
                ]
                evaluate = [*BOXER, "eval", "--checkpoint", str(run / "last"), "--data", args.data]
                rec = records.setdefault(
                    setting, {"train_s": [], "train_rss_mb": [], "eval_s": [], "eval_rss_mb": []}
                )
                for phase, cmd in (("train", train), ("eval", evaluate)):
                    seconds, rss = timed(cmd, environment(setting))
                    rec[f"{phase}_s"].append(round(seconds, 2))
                    rec[f"{phase}_rss_mb"].append(round(rss, 1))
                    print(
                        f"round {r} {setting:<8} {phase:<6} {seconds:8.1f} s  peak RSS {rss:7.0f} MiB",
                        flush=True,
                    )
    summary = {s: {k: statistics.median(v) for k, v in rec.items()} for s, rec in records.items()}
    for key in ("train_s", "eval_s", "train_rss_mb", "eval_rss_mb"):
        d, t = summary["default"][key], summary["tuned"][key]
        print(f"{key:<14} default {d:9.1f}  tuned {t:9.1f}  tuned/default {t / d:.2f}")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared), {platform.platform()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    out = Path(args.out)
    from boxer.engine.checkpoint import atomic_write_text

    atomic_write_text(out, json.dumps({"meta": meta, "runs": records, "median": summary}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
