"""Batch-1 CPU latency of several models, measured round-robin so load from other jobs hits all alike.

`boxer bench` times each model in turn. On a shared machine a burst of load from another job then
slows whichever model is being timed, and ratios between models move by 2x from run to run (the
efficient-ViT comparison in docs/zoo.md). Here every round calls each model once, in turn, for
`--rounds` rounds after one warm-up round. We report each model's fastest call, the steadiest
estimate of its own cost (see `boxer.benchmarking.timing`), and its median call, and give both as
ratios to `--reference`. Float32, `torch.inference_mode()`, `--threads` torch threads, random
3 x S x S inputs.

    taskset -c 1 .venv/bin/python benchmarks/interleaved_latency.py \
        --models emsnet_xtiny,mat2,partialformer_b1,pvt_v2_b0,swin_0p7g,convnext_xt,halo_0p7g \
        --reference swin_0p7g --out benchmarks/results/latency_efficient_vit_224.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boxer  # noqa: E402
from boxer.engine.checkpoint import atomic_write_text  # noqa: E402


def round_robin(models: dict[str, torch.nn.Module], size: int, rounds: int) -> dict[str, list[float]]:
    """Seconds of each call, per model: one untimed warm-up round, then `rounds` timed rounds."""
    inputs = {name: torch.randn(1, m.in_chans, size, size) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for r in range(rounds + 1):
            for name, model in models.items():
                start = time.perf_counter()
                model(inputs[name])
                if r:
                    times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", required=True, help="comma-separated registered classifiers")
    p.add_argument("--reference", required=True, help="the model the ratios are relative to")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="JSON file")
    args = p.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if args.reference not in names:
        raise SystemExit("interleaved_latency.py: --reference must be one of --models")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {n: boxer.create_model(n).eval() for n in names}
    load_start = os.getloadavg()
    times = round_robin(models, args.image_size, args.rounds)
    best = {n: min(t) * 1e3 for n, t in times.items()}
    median = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    rows = [
        {
            "name": n,
            "latency_min_ms": best[n],
            "latency_median_ms": median[n],
            "ratio_min": best[n] / best[args.reference],
            "ratio_median": median[n] / median[args.reference],
        }
        for n in names
    ]
    print("| model | fastest (ms) | median (ms) | fastest / ref | median / ref |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['latency_min_ms']:.1f} | {r['latency_median_ms']:.1f} | "
            f"{r['ratio_min']:.2f} | {r['ratio_median']:.2f} |"
        )
    method = {
        "command": " ".join(sys.argv),
        "rounds": args.rounds,
        "threads": args.threads,
        "image_size": args.image_size,
        "reference": args.reference,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, affinity {sorted(os.sched_getaffinity(0))}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({"method": method, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
