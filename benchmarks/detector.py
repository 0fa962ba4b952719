"""Detector cost benchmark: BoxeR-2D against torchvision Faster / Mask R-CNN and HF Deformable DETR.

Measures, in one run and under the same allocator setting for every contender:

- inference latency at batch 1 (model in eval mode, post-processing included: top-100 for the DETR
  family, torchvision's own post-processing and NMS for the R-CNNs);
- training step time at batch 2 (forward with losses, backward, AdamW step);
- the process CPU time of the same steps (with `--threads 1`, the figure least disturbed by other
  jobs on a shared machine);
- peak resident memory of each phase (CPU: `ru_maxrss` of a fresh subprocess per phase, and the
  rise above the memory held after building the model; GPU: `torch.cuda.max_memory_allocated`).

at 512x512 and 800x1333, with random weights and inputs (10 random ground-truth boxes/masks per
image), each (contender, size, phase, allocator) in its own subprocess. Both glibc settings are
run: `default` (MALLOC_* unset) and `tuned` (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736,
what the `boxer` CLI uses, see boxer/engine/allocator.py).

Contenders, all with 80 COCO classes (torchvision: 80 + background) and no downloads:

- `boxer2d_r50`: `boxer.create_model("boxer2d_r50")`, R50 frozen BN, 6+6 layers, 300 two-stage
  queries; `boxer2d_r50_mask`: the same with instance segmentation.
- `fasterrcnn_r50_fpn`, `maskrcnn_r50_fpn`: torchvision's COCO recipe, ResNet-50 with
  FrozenBatchNorm2d, 3 trainable stages, FPN, the default anchors (one size per level, 32 to 512,
  x ratios 0.5/1/2, as trained on COCO), `min_size`/`max_size` set to the input so nothing is
  resized.
- `deformable_detr`: HF `DeformableDetrForObjectDetection(DeformableDetrConfig(num_labels=80))`,
  a timm ResNet-50 with random init (`use_pretrained_backbone=False`, frozen BN), 6+6 layers,
  300 queries, single-stage (the HF default, and the setting of the reference figures in docs/boxer2d.md);
  `deformable_detr_2stage`: `two_stage=True, with_box_refine=True`, closest to BoxeR's two-stage
  proposals (not in the default list, to keep the run short: add it with `--contenders`).
- `boxer2d_r50_frozen2`, `boxer2d_r50_mask_frozen2` (optional): BoxeR with the stem and layer1
  frozen, the backbone work of the anchors' training recipes (the paper's BoxeR trains all stages).
- `boxer2d_r50_ckpt`, `boxer2d_r50_mask_ckpt` (optional): BoxeR with activation checkpointing of
  the encoder and decoder layers and of the backbone's stages (`checkpoint_layers=True,
  checkpoint_backbone=True`): less training memory, same numbers.

torchvision's `*_resnet50_fpn(weights=None, weights_backbone=None)` silently switches to trainable
BatchNorm and 5 trainable stages when no weights are given, so the COCO recipe is rebuilt here
from its parts (`resnet50(norm_layer=FrozenBatchNorm2d)` + `_resnet_fpn_extractor(..., 3)`).

    .venv/bin/python benchmarks/detector.py                      # everything (long on a 2-core CPU)
    .venv/bin/python benchmarks/detector.py --sizes 512x512 --contenders boxer2d_r50,deformable_detr
    .venv/bin/python benchmarks/detector.py --threads 1 --rounds 2   # on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "detector.json"
TUNED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
CONTENDERS = ["boxer2d_r50", "fasterrcnn_r50_fpn", "deformable_detr", "boxer2d_r50_mask", "maskrcnn_r50_fpn"]
# run with --contenders ...,deformable_detr_2stage (and the same-freezing BoxeR variants)
OPTIONAL = [
    "deformable_detr_2stage", "boxer2d_r50_frozen2", "boxer2d_r50_mask_frozen2", "boxer2d_r50_ckpt",
    "boxer2d_r50_mask_ckpt",
]  # fmt: skip
NUM_CLASSES = 80
NUM_BOXES = 10


# ---------------------------------------------------------------- inputs


def make_inputs(batch: int, h: int, w: int, *, masks: bool, seed: int = 0):
    """Random images and targets: xyxy pixel boxes, labels 0..79, optional box-shaped masks."""
    import torch

    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, h, w, generator=g)
    targets = []
    for i in range(batch):
        wh = torch.rand(NUM_BOXES, 2, generator=g) * 0.35 + 0.05
        xy = torch.rand(NUM_BOXES, 2, generator=g) * (1 - wh)
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        boxes = torch.cat([xy, xy + wh], 1) * scale  # N, 4 xyxy pixels
        t = {
            "boxes": boxes,
            "labels": torch.randint(0, NUM_CLASSES, (NUM_BOXES,), generator=g),
            "image_id": i + 1,
            "size": torch.tensor([h, w]),
            "orig_size": torch.tensor([h, w]),
        }
        if masks:
            m = torch.zeros(NUM_BOXES, h, w, dtype=torch.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
                m[k, y1:y2, x1:x2] = 1
            t["masks"] = m
        targets.append(t)
    return images, targets


# ---------------------------------------------------------------- contenders


class Boxer:
    def __init__(self, name: str) -> None:
        import boxer

        # `_frozen2`: stem + layer1 frozen, as the anchors' recipes (HF Deformable DETR freezes all but
        # layer2-4 of its ResNet; torchvision trains 3 stages); the paper's BoxeR trains every stage.
        # `_ckpt`: activation checkpointing of the encoder / decoder layers and the backbone's stages.
        kw = {}
        if name.endswith("_frozen2"):
            kw["backbone_kwargs"] = {"frozen_stages": 2}
        if name.removesuffix("_frozen2").endswith("_ckpt"):
            kw.update(checkpoint_layers=True, checkpoint_backbone=True)
        base = name.removesuffix("_frozen2").removesuffix("_ckpt")
        self.model = boxer.create_model(base, num_classes=NUM_CLASSES, **kw)
        self.masks = base.endswith("_mask")

    def infer(self, images, targets):
        import torch

        pad = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        return self.model.predict(images, pad, targets)

    def loss(self, images, targets):
        import torch

        pad = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        return self.model(images, pad, targets)["loss"]


class TorchvisionRCNN:
    def __init__(self, name: str, h: int, w: int) -> None:
        from torchvision.models import resnet50
        from torchvision.models.detection import FasterRCNN, MaskRCNN
        from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
        from torchvision.ops import FrozenBatchNorm2d

        body = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=FrozenBatchNorm2d), 3)
        cls = MaskRCNN if name.startswith("mask") else FasterRCNN
        self.model = cls(body, num_classes=NUM_CLASSES + 1, min_size=min(h, w), max_size=max(h, w))
        self.masks = cls is MaskRCNN

    def infer(self, images, targets):
        return self.model(list(images))

    def loss(self, images, targets):
        keys = ("boxes", "labels", "masks") if self.masks else ("boxes", "labels")
        tv = [{k: t[k] + 1 if k == "labels" else t[k] for k in keys} for t in targets]
        return sum(self.model(list(images), tv).values())


class HFDeformableDetr:
    def __init__(self, name: str) -> None:
        from transformers import (
            DeformableDetrConfig,
            DeformableDetrForObjectDetection,
            DeformableDetrImageProcessor,
        )

        two_stage = name.endswith("2stage")
        cfg = DeformableDetrConfig(num_labels=NUM_CLASSES, two_stage=two_stage, with_box_refine=two_stage)
        self.model = DeformableDetrForObjectDetection(cfg)
        self.post = DeformableDetrImageProcessor()
        self.masks = False

    def infer(self, images, targets):
        import torch

        pixel_mask = torch.ones(images.shape[0], *images.shape[-2:], dtype=torch.long, device=images.device)
        out = self.model(pixel_values=images, pixel_mask=pixel_mask)
        sizes = [tuple(t["orig_size"].tolist()) for t in targets]
        return self.post.post_process_object_detection(out, threshold=0.0, target_sizes=sizes, top_k=100)

    def loss(self, images, targets):
        import torch
        from torchvision.ops import box_convert

        pixel_mask = torch.ones(images.shape[0], *images.shape[-2:], dtype=torch.long, device=images.device)
        labels = []
        for t in targets:
            h, w = t["size"].tolist()
            norm = t["boxes"] / torch.tensor([w, h, w, h], device=images.device)
            labels.append({"class_labels": t["labels"], "boxes": box_convert(norm, "xyxy", "cxcywh")})
        return self.model(pixel_values=images, pixel_mask=pixel_mask, labels=labels).loss


def build(name: str, h: int, w: int):
    if name.startswith("boxer2d"):
        return Boxer(name)
    if name.startswith(("fasterrcnn", "maskrcnn")):
        return TorchvisionRCNN(name, h, w)
    if name.startswith("deformable_detr"):
        return HFDeformableDetr(name)
    raise SystemExit(f"unknown contender {name!r}; known: {', '.join(CONTENDERS + OPTIONAL)}")


# ---------------------------------------------------------------- one measurement (subprocess)


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(
    name: str, h: int, w: int, phase: str, repeats: int, warmup: int, device: str, threads: int = 0
) -> dict:
    """Times `phase` ("infer" at batch 1, "train" at batch 2) of one contender; returns a record."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    c = build(name, h, w)
    c.model.to(dev)
    images, targets = make_inputs(1 if phase == "infer" else 2, h, w, masks=getattr(c, "masks", False))
    images = images.to(dev)
    targets = [{k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets]
    params = sum(p.numel() for p in c.model.parameters()) / 1e6
    if phase == "infer":
        c.model.eval()
        step = lambda: c.infer(images, targets)  # noqa: E731
    else:
        c.model.train()
        opt = torch.optim.AdamW([p for p in c.model.parameters() if p.requires_grad], lr=1e-5)

        def step():
            opt.zero_grad(set_to_none=True)
            c.loss(images, targets).backward()
            opt.step()

    base = current_rss_mb()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, cpu = [], []
    with torch.inference_mode(phase == "infer"):
        for i in range(warmup + repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rec = {
        "contender": name,
        "size": f"{h}x{w}",
        "phase": phase,
        "device": device,
        "params_m": round(params, 2),
        "median_s": statistics.median(times),
        "times_s": [round(t, 4) for t in times],
        "cpu_times_s": [round(t, 4) for t in cpu],
        "peak_rss_mb": round(peak, 1),
        "rss_rise_mb": round(peak - base, 1),
        "threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        rec["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return rec


# ---------------------------------------------------------------- orchestration


def run_one(name: str, size: str, phase: str, allocator: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["BOXER_NO_MALLOC_TUNING"] = "1"
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if allocator == "tuned":
        env.update(TUNED)
    cmd = [sys.executable, __file__, "--worker", name, "--sizes", size, "--phase", phase]
    cmd += ["--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", args.device]
    cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {
            "contender": name,
            "size": size,
            "phase": phase,
            "allocator": allocator,
            "error": " | ".join(tail),
        }
    rec = json.loads(done.stdout.strip().splitlines()[-1])
    rec["allocator"] = allocator
    return rec


def collect(args) -> list[dict]:
    """Runs every measurement `args.rounds` times, contenders interleaved within a round, and merges
    the rounds: `best_s` is the fastest step seen (robust to load from other processes), `median_s`
    the median of all timed steps, memory the largest peak."""
    runs: dict[tuple, list[dict]] = {}
    for size in args.sizes.split(","):
        for phase in args.phases.split(","):
            for r in range(args.rounds):
                for alloc in args.allocators.split(","):
                    for name in args.contenders.split(","):
                        rec = run_one(name, size, phase, alloc, args)
                        runs.setdefault((name, size, phase, alloc), []).append(rec)
                        took = f"{rec['median_s']:.3f} s" if "error" not in rec else "ERROR " + rec["error"]
                        print(f"round {r} {name:<24}{size:<10}{phase:<7}{alloc:<8}{took}", flush=True)
    return [merge(recs) for recs in runs.values()]


def merge(recs: list[dict]) -> dict:
    ok = [r for r in recs if "error" not in r]
    if not ok:
        return recs[-1]
    times = [t for r in ok for t in r["times_s"]]
    out = {**ok[0], "times_s": times, "rounds": len(ok)}
    out.update(median_s=statistics.median(times), best_s=min(times))
    cpu = [t for r in ok for t in r["cpu_times_s"]]
    out.update(cpu_times_s=cpu, best_cpu_s=min(cpu))
    for key in ("peak_rss_mb", "rss_rise_mb", "peak_cuda_mb"):
        if key in ok[0]:
            out[key] = max(r[key] for r in ok)
    out.pop("min_s", None)
    return out


def ratios(results: list[dict]) -> list[dict]:
    """boxer / anchor ratios of the best and median step times and of the memory figures."""
    pairs = [
        ("boxer2d_r50", "deformable_detr"),
        ("boxer2d_r50", "deformable_detr_2stage"),
        ("boxer2d_r50", "fasterrcnn_r50_fpn"),
        ("boxer2d_r50_mask", "maskrcnn_r50_fpn"),
        ("boxer2d_r50_frozen2", "deformable_detr"),
        ("boxer2d_r50_frozen2", "fasterrcnn_r50_fpn"),
        ("boxer2d_r50_mask_frozen2", "maskrcnn_r50_fpn"),
        ("boxer2d_r50_ckpt", "fasterrcnn_r50_fpn"),
        ("boxer2d_r50_mask_ckpt", "maskrcnn_r50_fpn"),
    ]
    index = {(r["contender"], r["size"], r["phase"], r["allocator"]): r for r in results if "error" not in r}
    out = []
    for ours, anchor in pairs:
        for (name, size, phase, alloc), rec in index.items():
            other = index.get((anchor, size, phase, alloc))
            if name != ours or other is None:
                continue
            out.append({
                "ours": ours, "anchor": anchor, "size": size, "phase": phase, "allocator": alloc,
                "time_ratio": round(rec["best_s"] / other["best_s"], 3),
                "median_time_ratio": round(rec["median_s"] / other["median_s"], 3),
                "cpu_time_ratio": round(rec["best_cpu_s"] / other["best_cpu_s"], 3),
                "memory_ratio": round(rec["rss_rise_mb"] / max(other["rss_rise_mb"], 1e-6), 3),
                "peak_rss_ratio": round(rec["peak_rss_mb"] / other["peak_rss_mb"], 3),
            })  # fmt: skip
    return out


def print_table(results: list[dict], rats: list[dict]) -> None:
    key = lambda r: (r["size"], r["phase"], r["contender"], r["allocator"])  # noqa: E731
    head = f"{'contender':<24}{'size':<10}{'phase':<7}{'alloc':<8}"
    print(f"\n{head}{'best s':>9}{'median s':>10}{'cpu s':>9}{'peak RSS MB':>13}{'rise MB':>10}")
    for r in sorted(results, key=key):
        row = f"{r['contender']:<24}{r['size']:<10}{r['phase']:<7}{r['allocator']:<8}"
        if "error" in r:
            print(f"{row}  ERROR {r['error']}")
            continue
        times = f"{r['best_s']:>9.3f}{r['median_s']:>10.3f}{r['best_cpu_s']:>9.3f}"
        print(f"{row}{times}{r['peak_rss_mb']:>13.0f}{r['rss_rise_mb']:>10.0f}")
    print(f"\n{'ratio (best wall, best cpu time; mem rise, peak)':<46}{'size':<10}{'phase':<7}{'alloc':<8}"
          f"{'time':>6}{'cpu':>6}{'rise':>6}{'peak':>6}")  # fmt: skip
    for q in rats:
        label = f"{q['ours']} / {q['anchor']}"
        print(f"{label:<46}{q['size']:<10}{q['phase']:<7}{q['allocator']:<8}"
              f"{q['time_ratio']:>6.2f}{q['cpu_time_ratio']:>6.2f}{q['memory_ratio']:>6.2f}"
              f"{q['peak_rss_ratio']:>6.2f}")  # fmt: skip
    index = {key(r): r for r in results if "error" not in r}
    lines = []
    for (size, phase, name, alloc), r in sorted(index.items()):
        other = index.get((size, phase, name, "default"))
        if alloc == "tuned" and other:
            lines.append(f"{name:<24}{size:<10}{phase:<7}{r['best_s'] / other['best_s']:>6.2f}"
                         f"{r['peak_rss_mb'] / other['peak_rss_mb']:>7.2f}")  # fmt: skip
    if lines:
        print(f"\n{'allocator tuned / default':<41}{'time':>6}{'peak':>7}")
        print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    p.add_argument("--sizes", default="512x512,800x1333", help="comma-separated HxW")
    p.add_argument("--phases", default="infer,train", help="infer (batch 1) and/or train (batch 2)")
    p.add_argument("--allocators", default="default,tuned", help="glibc settings to run: default, tuned")
    p.add_argument("--repeats", type=int, default=2, help="timed steps per subprocess")
    p.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds of every measurement (shared CPU: 2+)"
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch's default)")
    p.add_argument("--device", default="cuda" if _has_cuda() else "cpu", help="cpu or cuda")
    p.add_argument("--timeout", type=int, default=1200, help="seconds per measurement subprocess")
    p.add_argument("--out", default=str(RESULTS), help="JSON output")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--phase", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        h, w = map(int, args.sizes.split("x"))
        rec = measure(args.worker, h, w, args.phase, args.repeats, args.warmup, args.device, args.threads)
        print(json.dumps(rec))
        return
    results = collect(args)
    rats = ratios(results)
    print_table(results, rats)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "device": args.device,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "repeats": args.repeats,
        "rounds": args.rounds,
        "threads": args.threads or "torch default",
        "warmup": args.warmup,
        "note": "time_ratio uses best_s (fastest wall-clock step seen), cpu_time_ratio the process CPU "
        "time (robust on a shared machine with --threads 1); CPU timings on a shared machine are noisy",
    }
    out = Path(args.out)
    from boxer.engine.checkpoint import atomic_write_text

    atomic_write_text(out, json.dumps({"meta": meta, "results": results, "ratios": rats}, indent=1) + "\n")
    print(f"\nwrote {out}")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    main()
