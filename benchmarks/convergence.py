"""Convergence benchmark: box AP50 / AP on a tuning set against *training CPU time*, per detector.

Which detector learns fastest on a CPU? Every contender trains on FashionScenes train from the same
pretrained ResNet-18 backbone file (`boxer pretrain-backbone`; stem and layer1 frozen), on the same
images in the same order (256 px, no augmentation, batch 4, seed 0), with one torch thread, and is
evaluated whenever its training CPU time crosses a mark (default 3, 7, 15, 30 minutes). Evaluation
is on a *tuning set*, another seed's scenes (their train split: Fashion-MNIST train items only),
never on FashionScenes val:

    .venv/bin/boxer data fashion-scenes --out /tmp/fs_tune --train 200 --val 10 --seed 7

The budget is the process CPU time of the training steps (`time.process_time`, data loading
included since the loader runs in-process, evaluation excluded), so that other jobs on a shared
machine slow the wall clock but not the measure; wall time and the load average are recorded too.
One run per contender: its LR schedule is laid out over the largest mark (warmup 50 iterations from
1%, LR x0.1 once 80% of the largest budget is spent, as in configs/fashion_scenes_demo.py), so the
earlier marks show the curve of that run, not what a schedule fitted to the shorter budget would
give. The optimiser is the engine's (`boxer.engine.optim`: AdamW, wd 1e-4, clip 0.1, backbone at
`lr_backbone`); the glibc allocator is tuned as in the `boxer` CLI (boxer/engine/allocator.py).

Contenders (the `CONTENDERS` table below; pick with `--contenders a,b`):

- `boxer_lite`: `boxer2d_r18_lite` with the demo recipe (configs/fashion_scenes_demo.py) but the
  paper's losses (the recipe before the training accelerations);
- `boxer_lite_accel`: the demo recipe itself, with the accelerations the tuning set kept (denoising
  queries, IoU-aware class loss and matching cost, iterative box refinement, one-to-many
  supervision) and class-wise NMS at inference;
- `detr_lite`: `detr_r18_lite` (DETR at the lite size);
- `fasterrcnn_r18_fpn`: torchvision Faster R-CNN + FPN set for small images (boxer/models/maskrcnn.py).

A contender whose model or keywords do not exist stops the script before any training, naming it.

    # the full benchmark (about 4 x 30 CPU-minutes of training plus evaluations; long)
    taskset -c 0 .venv/bin/python benchmarks/convergence.py --data data/fashion-scenes --tune /tmp/fs_tune \\
        --backbone data/pretrained/resnet18-fashion-items.safetensors
    # quick mode: marks at 2, 4, 8 CPU-minutes, the first 100 tuning images (~40 minutes on one core;
    # two contenders per core: a second process with --out B.json, then --merge-from B.json; about 20)
    taskset -c 0 .venv/bin/python benchmarks/convergence.py --quick --contenders boxer_lite,fasterrcnn_r18_fpn
    # add a contender to an existing report (same setup) without re-running the others
    .venv/bin/python benchmarks/convergence.py --quick --contenders detr_lite --merge

It prints a table (contender x mark -> AP50 / AP) and writes benchmarks/results/convergence.json
(`convergence_quick.json` with --quick): the arguments, machine, torch version, date, load average,
allocator, and per contender its settings and curve (per mark: CPU and wall seconds, iteration, AP,
AP50, class-agnostic AP50, smoothed loss, LR, load). A PNG of the same name plots AP50 and AP
against CPU-minutes, one line per contender.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import runpy
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FROZEN2 = {"backbone_kwargs": {"frozen_stages": 2}}  # stem and layer1 frozen, as the demo
DEMO_KWARGS = runpy.run_path(str(ROOT / "configs" / "fashion_scenes_demo.py"))["CONFIG"]["model_kwargs"]


@dataclass(frozen=True)
class Contender:
    """A registered model, its keywords (the backbone file is added) and its optimiser settings."""

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 4e-4
    lr_backbone: float = 1e-4
    amp: str = "bf16"
    note: str = ""


CONTENDERS: dict[str, Contender] = {
    "boxer_lite": Contender(
        "boxer2d_r18_lite", FROZEN2, note="the demo recipe without the accelerations (the paper's losses)"
    ),
    "boxer_lite_accel": Contender(
        "boxer2d_r18_lite",
        DEMO_KWARGS,
        note="the demo recipe (configs/fashion_scenes_demo.py): + denoising queries (3 groups), IoU-aware "
        "class loss and cost, box refinement, one-to-many (k 4), class-wise NMS at 0.5",
    ),
    "detr_lite": Contender("detr_r18_lite", FROZEN2, lr=2e-4, note="Deformable DETR's lr (untuned)"),
    "fasterrcnn_r18_fpn": Contender(
        "fasterrcnn_r18_fpn", FROZEN2, lr=2e-4, note="untuned (AdamW R-CNN recipes: 1e-4 at batch 16)"
    ),
}
# Shared by every contender (configs/fashion_scenes_demo.py): warmup, LR drop, clipping, images, batch.
SCHEDULE = {"warmup_iters": 50, "warmup_factor": 0.01, "drop_at": 0.8, "lr_gamma": 0.1, "clip_max_norm": 0.1}
MARKS = (3.0, 7.0, 15.0, 30.0)  # training CPU-minutes
QUICK = {"marks": (2.0, 4.0, 8.0), "tune_images": 100}
EVAL_BATCH = 8


class ContenderError(Exception):
    """A contender cannot be built or stopped training (non-finite loss)."""


# ---------------------------------------------------------------- data


@dataclass
class TuningSet:
    """The evaluation images and both ground truths (per class, and every class merged into one)."""

    dataset: Any  # a CocoDetection or a Subset of one
    ann: dict[str, Any]
    cat_ids: list[int]
    agnostic_ann: dict[str, Any]


def load_data(args: argparse.Namespace):
    """FashionScenes train (eval transforms = no augmentation) and the tuning set (its train split)."""
    import torch

    from boxer.data.coco_json import load_coco_json
    from boxer.engine.data import coco_dataset, resolve_split
    from boxer.errors import BoxerError

    if Path(args.data).resolve() == Path(args.tune).resolve():
        raise BoxerError(f"--tune {args.tune}: must be another seed's scenes, not the training data")
    size = {"image_size": args.size, "max_size": args.size, "with_masks": False}
    train = coco_dataset(resolve_split(args.data, "train"), train=False, **size)
    split = resolve_split(args.tune, "train")
    tune = coco_dataset(split, train=False, **size)
    if tune.cat_ids != train.cat_ids:
        raise BoxerError(f"{split.ann_file}: categories {tune.cat_ids} differ from the training data's")
    ann = load_coco_json(split.ann_file)
    n = min(args.tune_images or len(tune), len(tune))
    subset = tune if n == len(tune) else torch.utils.data.Subset(tune, range(n))
    return train, TuningSet(subset, ann, list(tune.cat_ids), _one_class(ann))


def _one_class(ann: dict[str, Any]) -> dict[str, Any]:
    """The ground truth with every category merged into one (class-agnostic AP, COCOeval useCats=0)."""
    anns = [{**a, "category_id": 1} for a in ann["annotations"]]
    return {**ann, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}


# ---------------------------------------------------------------- contenders


def model_kwargs(spec: Contender, backbone: str) -> dict[str, Any]:
    return {**spec.kwargs, "pretrained_backbone": backbone}


def build(name: str, spec: Contender, *, num_classes: int, backbone: str):
    """The contender's model; a missing model or a rejected keyword raises ContenderError."""
    from boxer.engine.runner import build_model
    from boxer.errors import BoxerError

    try:
        return build_model(spec.model, num_classes=num_classes, model_kwargs=model_kwargs(spec, backbone))
    except BoxerError as err:
        raise ContenderError(
            f"contender {name}: {err}. Its model or keywords may not exist yet: fix CONTENDERS in "
            f"{Path(__file__).name}, or leave it out with --contenders"
        ) from None


def check_contenders(names: list[str], *, num_classes: int, backbone: str) -> None:
    """Builds every contender once before any training, so that a bad one fails at once."""
    for name in names:
        build(name, CONTENDERS[name], num_classes=num_classes, backbone=backbone)


# ---------------------------------------------------------------- training


class TrainClock:
    """Process CPU seconds and wall seconds spent inside `with clock:` blocks."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def __enter__(self) -> TrainClock:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall


def train_step(model, batch, optimizer, *, amp: str, clip: float) -> float:
    """One forward / backward / AdamW step; returns the loss, raises ContenderError if not finite."""
    import torch

    from boxer.engine.evaluate import autocast, batch_to_device

    cpu = torch.device("cpu")
    images, pad_mask, targets = batch_to_device(batch, cpu)
    with autocast(cpu, amp):
        losses = model(images, pad_mask, targets)
    loss = float(losses["loss"].detach())
    if not torch.isfinite(losses["loss"]):
        raise ContenderError(f"non-finite loss ({loss})")
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def _batches(loader):
    """Training batches forever, epoch after epoch, in the loader's seeded order."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def train_contender(name: str, train_set, tune: TuningSet, args: argparse.Namespace) -> dict[str, Any]:
    """Trains one contender up to the last mark, evaluating at each; returns its record and curve."""
    import torch

    from boxer.data import collate_detection
    from boxer.engine.config import TrainConfig
    from boxer.engine.distributed import DistInfo
    from boxer.engine.loader import TrainLoader
    from boxer.engine.optim import build_optimizer, build_schedule

    spec = CONTENDERS[name]
    torch.manual_seed(args.seed)
    model = build(name, spec, num_classes=train_set.num_classes, backbone=args.backbone).train()
    steps = {k: SCHEDULE[k] for k in ("warmup_iters", "warmup_factor", "lr_gamma")}
    cfg = TrainConfig.from_dict(
        {"lr": spec.lr, "lr_backbone": spec.lr_backbone, "lr_step_unit": "iter", **steps}
    )
    optimizer = build_optimizer(model, cfg)
    schedule = build_schedule(optimizer, cfg, iters_per_epoch=1)  # the drop is placed by CPU time below
    info = DistInfo(device=torch.device("cpu"))
    loader = TrainLoader(
        train_set, batch_size=args.batch_size, collate_fn=collate_detection, info=info, seed=args.seed
    )
    record = _record_head(name, spec, model)
    budgets = [60 * m for m in args.marks]
    drop_cpu = SCHEDULE["drop_at"] * budgets[-1]
    clock, loss_avg, it = TrainClock(), None, 0
    print(f"\n== {name}: {spec.model}, {record['params_m']:.2f}M parameters", flush=True)
    try:
        for batch in _batches(loader):
            with clock:
                loss = train_step(model, batch, optimizer, amp=spec.amp, clip=SCHEDULE["clip_max_norm"])
                if not schedule.milestones and clock.cpu >= drop_cpu:
                    schedule.milestones = [schedule.last_iter + 1]  # LR x gamma from this step on
                schedule.step()
            it += 1
            loss_avg = loss if loss_avg is None else 0.95 * loss_avg + 0.05 * loss
            while len(record["curve"]) < len(budgets) and clock.cpu >= budgets[len(record["curve"])]:
                mark = args.marks[len(record["curve"])]
                point = {"mark_min": mark, "iteration": it, "train_cpu_s": round(clock.cpu, 1),
                         "train_wall_s": round(clock.wall, 1), "loss": round(loss_avg, 3),
                         "lr": float(f"{max(g['lr'] for g in optimizer.param_groups):.3g}")}  # fmt: skip
                record["curve"].append({**point, **evaluate(model, tune)})
                print(_point_line(record["curve"][-1]), flush=True)
            if len(record["curve"]) == len(budgets):
                break
    except ContenderError as err:
        record["stopped"] = f"iteration {it + 1}: {err}"
        print(f"{name} stopped at {record['stopped']}", flush=True)
    record.update(iterations=it, train_cpu_s=round(clock.cpu, 1), train_wall_s=round(clock.wall, 1))
    record["cpu_s_per_it"] = round(clock.cpu / max(it, 1), 3)
    return record


def _record_head(name: str, spec: Contender, model) -> dict[str, Any]:
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {**asdict(spec), "name": name, "params_m": round(params / 1e6, 2),
            "trainable_m": round(trainable / 1e6, 2), "stopped": None, "curve": []}  # fmt: skip


def _point_line(p: dict[str, Any]) -> str:
    return (
        f"  {p['mark_min']:g} CPU-min: it {p['iteration']}, AP50 {p['AP50']:.3f}, AP {p['AP']:.3f}, "
        f"agnostic AP50 {p['AP50_agnostic']:.3f}, loss {p['loss']:.3f}, wall {p['train_wall_s']:.0f} s, "
        f"eval {p['eval_wall_s']:.0f} s, load {p['load_1m']:.2f}"
    )


# ---------------------------------------------------------------- evaluation


def evaluate(model, tune: TuningSet) -> dict[str, float]:
    """Box AP, AP50 and class-agnostic AP50 on the tuning set (fp32 inference, 100 detections)."""
    import torch

    from boxer.data import collate_detection
    from boxer.engine.evaluate import predict_batches
    from boxer.evaluation import CocoEvaluator

    start = time.perf_counter()
    loader = torch.utils.data.DataLoader(tune.dataset, batch_size=EVAL_BATCH, collate_fn=collate_detection)
    preds = predict_batches(model, loader, torch.device("cpu"), "none")
    per_class = CocoEvaluator(tune.ann, cat_ids=tune.cat_ids, verbose=False)
    per_class.update(preds)
    merged = CocoEvaluator(tune.agnostic_ann, cat_ids=[1], verbose=False)
    merged.update({i: {**p, "labels": torch.zeros_like(p["labels"])} for i, p in preds.items()})
    stats, agnostic = per_class.evaluate(), merged.evaluate()
    return {
        "AP": round(stats["bbox/AP"], 4),
        "AP50": round(stats["bbox/AP50"], 4),
        "AP50_agnostic": round(agnostic["bbox/AP50"], 4),
        "eval_wall_s": round(time.perf_counter() - start, 1),
        "load_1m": round(os.getloadavg()[0], 2),
    }


# ---------------------------------------------------------------- report


def setup_of(args: argparse.Namespace, n_tune: int) -> dict[str, Any]:
    """What must match for two runs to share a report (--merge)."""
    keys = ("data", "tune", "backbone", "size", "batch_size", "threads", "seed")
    return {**{k: getattr(args, k) for k in keys}, "marks": list(args.marks), "tune_images": n_tune,
            "schedule": SCHEDULE}  # fmt: skip


def machine() -> dict[str, Any]:
    import torch

    from boxer.engine.allocator import status

    model = next((ln.split(":", 1)[1].strip() for ln in _cpuinfo() if ln.startswith("model name")), "")
    return {"cpu": model or platform.processor(), "arch": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "allocator": status(),
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def previous_runs(path: Path, setup: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """With --merge: the other contenders' runs of an existing report with the same setup."""
    from boxer.errors import BoxerError

    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    if old.get("setup") != setup:
        raise BoxerError(f"--merge: {path} was measured with another setup; write elsewhere with --out")
    return {k: v for k, v in old["contenders"].items() if k not in names}


def write_report(path: Path, report: dict[str, Any]) -> None:
    from boxer.data.io import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report, indent=1)


def table(report: dict[str, Any]) -> str:
    """Markdown table: one row per contender, one column per mark (AP50 / AP)."""
    marks = report["setup"]["marks"]
    head = ["contender", "CPU s/it", *[f"{m:g} min" for m in marks], "agnostic AP50 (last)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, run in report["contenders"].items():
        cells = [f"{p['AP50']:.3f} / {p['AP']:.3f}" for p in run["curve"]]
        cells += ["stopped" if run["stopped"] else "-"] * (len(marks) - len(cells))
        agnostic = f"{run['curve'][-1]['AP50_agnostic']:.3f}" if run["curve"] else "-"
        lines.append(f"| {name} | {run['cpu_s_per_it']:.2f} | " + " | ".join(cells) + f" | {agnostic} |")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """AP50 and AP against training CPU-minutes, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setup = report["setup"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    right = max(setup["marks"])
    for name, run in report["contenders"].items():
        minutes = [p["train_cpu_s"] / 60 for p in run["curve"]]
        right = max([right, *minutes])
        for ax, key in zip(axes, ("AP50", "AP")):
            ax.plot(minutes, [p[key] for p in run["curve"]], marker="o", linewidth=2, label=name)
    for ax, key in zip(axes, ("box AP50", "box AP (0.5:0.95)")):
        ax.set_xlabel("training CPU-minutes (1 thread)", fontsize=11)
        ax.set_ylabel(f"{key}, tuning set", fontsize=11)
        ax.set_xlim(0, right * 1.05)
        ax.set_ylim(bottom=0)
        ax.set_xticks([0, *setup["marks"]])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=10, loc="upper left")
    fig.suptitle(
        f"FashionScenes train -> tuning set ({setup['tune_images']} scenes): {setup['size']} px, batch "
        f"{setup['batch_size']}, no augmentation, pretrained R18 backbone; {report['date'][:10]}",
        fontsize=11,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/fashion-scenes", help="FashionScenes folder (its train split)")
    p.add_argument("--tune", default="/tmp/fs_tune", help="tuning scenes, another seed (its train split)")
    p.add_argument("--backbone", default="data/pretrained/resnet18-fashion-items.safetensors",
                   help="pretrained ResNet-18 file from `boxer pretrain-backbone`")  # fmt: skip
    p.add_argument("--contenders", default=",".join(CONTENDERS), help=f"of {', '.join(CONTENDERS)}")
    p.add_argument("--marks", type=_floats, default=None, help=f"CPU-minutes (default {_csv(MARKS)})")
    p.add_argument("--tune-images", type=int, default=None, help="first N tuning scenes (default all)")
    p.add_argument("--quick", action="store_true", help=f"marks {_csv(QUICK['marks'])}, 100 tuning scenes")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", default=None, help="report JSON (default benchmarks/results/convergence[_quick].json)"
    )
    p.add_argument("--merge", action="store_true", help="keep the other contenders of an existing report")
    p.add_argument(
        "--merge-from",
        default=None,
        help="no training: add the contenders of this report (same setup) to --out",
    )
    args = p.parse_args(argv)
    args.marks = tuple(args.marks or (QUICK["marks"] if args.quick else MARKS))
    if args.tune_images is None:
        args.tune_images = QUICK["tune_images"] if args.quick else 0
    args.out = args.out or str(RESULTS / ("convergence_quick.json" if args.quick else "convergence.json"))
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in args.contenders if c not in CONTENDERS]
    if unknown or sorted(args.marks) != list(args.marks) or min(args.marks) <= 0:
        p.error(
            f"unknown contenders {unknown}" if unknown else f"--marks must increase from > 0: {args.marks}"
        )
    return args


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def _csv(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _tune_allocator() -> None:
    """Re-executes this script once with the `boxer train` glibc setting (boxer/engine/allocator.py)."""
    from boxer.engine import allocator

    if allocator.should_reexec(["train"]):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], allocator.tuned_environ())


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Trains and evaluates every contender; writes the JSON after each one and the PNG at the end."""
    import torch

    from boxer.errors import BoxerError

    torch.set_num_threads(args.threads)
    if not Path(args.backbone).is_file():
        raise BoxerError(f"--backbone {args.backbone}: no such file (make demo, or boxer pretrain-backbone)")
    train_set, tune = load_data(args)
    check_contenders(args.contenders, num_classes=train_set.num_classes, backbone=args.backbone)
    out = Path(args.out)
    setup = setup_of(args, len(tune.dataset))
    runs = previous_runs(out, setup, args.contenders) if args.merge else {}
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report = {"benchmark": "convergence", "date": date,
              "command": " ".join(sys.argv), "args": vars(args), "setup": setup, "machine": machine(),
              "load_start": list(os.getloadavg()), "contenders": runs}  # fmt: skip
    for name in args.contenders:
        runs[name] = train_contender(name, train_set, tune, args)
        report["load_end"] = list(os.getloadavg())
        write_report(out, report)
    plot(report, out.with_suffix(".png"))
    return report


def merge_from(args: argparse.Namespace) -> dict[str, Any]:
    """Adds the contenders of report `--merge-from` to report `--out` (both measured with the same
    setup, e.g. two processes on two cores); rewrites the JSON and the PNG."""
    from boxer.errors import BoxerError

    out, other = Path(args.out), Path(args.merge_from)
    for path in (out, other):
        if not path.is_file():
            raise BoxerError(f"--merge-from: {path} is not a report")
    report, extra = json.loads(out.read_text()), json.loads(other.read_text())
    if report["setup"] != extra["setup"]:
        raise BoxerError(f"--merge-from: {other} was measured with another setup than {out}")
    report["contenders"].update(extra["contenders"])
    report["merged_from"] = {"command": extra["command"], "date": extra["date"], "file": str(other)}
    write_report(out, report)
    plot(report, out.with_suffix(".png"))
    return report


def main(argv: list[str] | None = None) -> int:
    if argv is None and "--merge-from" not in sys.argv:
        _tune_allocator()
    args = parse_args(argv)
    from boxer.errors import BoxerError

    try:
        report = merge_from(args) if args.merge_from else run(args)
    except (BoxerError, ContenderError) as err:
        print(f"convergence: {err}", file=sys.stderr)
        return 2
    print("\n" + table(report))
    print(f"\nwrote {args.out} and {Path(args.out).with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
