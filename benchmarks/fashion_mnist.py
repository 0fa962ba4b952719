"""Fashion-MNIST accuracy vs cost of the attention zoo, every family under the same budget.

Trains each model with the same recipe and budget (`boxer train-cls` defaults: AdamW lr 3e-3, wd
0.05, 0.3-epoch warm-up then cosine, label smoothing 0.1, translate +-2 px + flips, batch 128, bf16
autocast, `--epochs` passes over the 55,000 training images, 5,000 held out for validation and
checkpoint selection) and reports test top-1/top-5 on the official 10,000-image test split (never
used for any choice), parameters, forward MFLOPs per image, training wall/CPU time and inference
throughput (batch 256, median of 5).

Families: `resnet_fm` (the CNN), `bot_fm` (its last stage with BoT MHSA), the BoTNet position
ablation (`mhsa`, `mhsa_qr`, `mhsa_abs` in the same place), `hybrid_fm` with every other registered
mixer in the last two stages, `vit_fm` and `swin_fm`.

    .venv/bin/python benchmarks/fashion_mnist.py                   # everything, 3 epochs each
    .venv/bin/python benchmarks/fashion_mnist.py --models resnet_fm,bot_fm --epochs 5

Prints a markdown table and writes benchmarks/results/fashion_mnist.json (rewritten after every
model, so an interrupted run keeps what it finished; `--resume` skips models already there with the
same budget). Timings on a shared machine are noisy: compare within one run, read CPU time too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boxer.benchmarking.flops import count_flops  # noqa: E402
from boxer.benchmarking.timing import median_seconds  # noqa: E402
from boxer.classification import ClassifyConfig, train_classifier  # noqa: E402
from boxer.classification.runner import load_classifier  # noqa: E402
from boxer.engine.checkpoint import atomic_write_text  # noqa: E402
from boxer.layers import list_mixers  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "fashion_mnist.json"
ABLATION = ("mhsa", "mhsa_qr", "mhsa_abs")  # BoTNet deck: qk, qr, qk + abs (bot_fm is qk + qr)


def default_specs() -> list[tuple[str, str, dict[str, Any]]]:
    """(label, registered model, keywords) for every family."""
    specs = [("resnet_fm", "resnet_fm", {}), ("bot_fm", "bot_fm", {})]
    specs += [(f"bot_fm[{m}]", "bot_fm", {"mixer": m}) for m in ABLATION]
    others = [m for m in list_mixers() if m not in (*ABLATION, "mhsa_rel")]
    specs += [(f"hybrid_fm[{m}]", "hybrid_fm", {"mixer": m}) for m in others]
    return specs + [("vit_fm", "vit_fm", {}), ("swin_fm", "swin_fm", {})]


def parse_specs(text: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """`resnet_fm,hybrid_fm[local]` -> specs; `[x]` sets the mixer."""
    if not text:
        return default_specs()
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, _, rest = item.partition("[")
        out.append((item, name, {"mixer": rest.rstrip("]")} if rest else {}))
    return out


@torch.inference_mode()
def inference_cost(model: torch.nn.Module, batch: int = 256) -> tuple[float, float]:
    """(forward MFLOPs per image, inference images/s at `batch`)."""
    model.eval()
    one, many = model.example_input(1), model.example_input(batch)
    flops = count_flops(lambda: model(one))
    seconds = median_seconds(lambda: model(many), torch.device("cpu"), warmup=1, repeats=5)
    return flops / 1e6, batch / seconds


def run_one(label: str, name: str, kw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    cfg = ClassifyConfig(
        model=name,
        model_kwargs=kw,
        epochs=args.epochs,
        batch_size=args.batch_size,
        amp=args.amp,
        threads=args.threads,
        seed=args.seed,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        out=str(Path(args.runs) / label.replace("[", "-").replace("]", "")),
        progress=False,
    )
    res = train_classifier(cfg)
    model, _ = load_classifier(Path(res["run_dir"]) / "best")
    mflops, infer = inference_cost(model)
    seen = res["epochs"] * (args.limit_train or 55000)
    return {
        "label": label,
        "model": name,
        "kwargs": kw,
        "params_m": res["params"] / 1e6,
        "mflops": mflops,
        "val_top1": res["best_val_top1"],
        "test_top1": res["test_top1"],
        "test_top5": res["test_top5"],
        "train_wall_s": res["train_wall_s"],
        "train_cpu_s": res["train_cpu_s"],
        "train_img_s": seen / res["train_wall_s"],
        "infer_img_s": infer,
        "run_dir": res["run_dir"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | params (M) | MFLOPs | val top-1 | test top-1 | test top-5 | train wall (min) | "
        "train CPU (min) | train img/s | infer img/s |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['params_m']:.3f} | {r['mflops']:.1f} | {r['val_top1']:.2f} | "
            f"{r['test_top1']:.2f} | {r['test_top5']:.2f} | {r['train_wall_s'] / 60:.1f} | "
            f"{r['train_cpu_s'] / 60:.1f} | {r['train_img_s']:.0f} | {r['infer_img_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated, e.g. resnet_fm,bot_fm,hybrid_fm[local] (default: all)")
    p.add_argument("--epochs", type=int, default=3, help="the budget: passes over the training split")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--amp", choices=("off", "bf16"), default="bf16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=int, help="smoke runs only: N training images")
    p.add_argument("--limit-test", type=int, help="smoke runs only: N test images")
    p.add_argument("--runs", default=str(ROOT / "runs" / "fashion_mnist"), help="run directories")
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    p.add_argument("--resume", action="store_true", help="skip models already in --out with this budget")
    args = p.parse_args()

    budget = {k: getattr(args, k) for k in ("epochs", "batch_size", "amp", "threads", "seed", "limit_train")}
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    if args.resume and out.is_file():
        old = json.loads(out.read_text())
        rows = old["rows"] if old.get("budget") == budget else []
    started = time.time()
    meta = {
        "benchmark": "fashion_mnist",
        "budget": budget,
        "recipe": ClassifyConfig().to_dict(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)",
        "torch": torch.__version__,
        "load_average_start": os.getloadavg(),
        "command": " ".join(sys.argv),
    }
    done = {r["label"] for r in rows}
    for label, name, kw in parse_specs(args.models):
        if label in done:
            continue
        print(f"== {label}", flush=True)
        rows.append(run_one(label, name, kw, args))
        meta["load_average_end"] = os.getloadavg()
        meta["total_wall_s"] = time.time() - started
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    print()
    print(table(rows))
    best = max(rows, key=lambda r: r["test_top1"])
    print(
        f"\nbest: {best['label']} {best['test_top1']:.2f}% test top-1 after "
        f"{best['train_wall_s'] / 60:.1f} min of training"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
