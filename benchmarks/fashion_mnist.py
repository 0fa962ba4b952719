"""Fashion-MNIST accuracy vs cost of the attention zoo, every family under one documented budget.

Recipe (`boxer train-cls` defaults, the same for every model): AdamW (lr 1.5e-3, batch 64, weight
decay 0.05 on weights only), 0.3-epoch linear warm-up then cosine to 1%, label smoothing 0.1, random
translation +-2 px and horizontal flips, bf16 autocast, channels-last; the official 60,000 training
images minus 5,000 held out for validation (checkpoint selection: best val top-1 after each epoch and
at the end); the official 10,000 test images are evaluated once per model, at the end, and never
used for a choice.

Budget: training time, the same for every member of a group (equal compute on one machine; a model
that is slow per image sees fewer images, and the table says how many epochs it saw). The cosine
schedule follows the larger of step and time progress (`max_minutes` of `boxer train-cls`), so each
run anneals completely within its minutes. Default run, ~40 min on one pinned thread:
- `--minutes` (3) for the families: `resnet_fm` (the CNN), `bot_fm` (its last stage with BoT MHSA,
  qk + qr), the BoTNet position ablation in the same place (`mhsa` = qk, `mhsa_qr` = qr, `mhsa_abs` =
  qk + abs), `vit_fm`, `swin_fm`, and the efficient-ViT deck's `emsnet_fm`, `mat_fm` and
  `partialformer_fm`;
- `--sweep-minutes` (1.5) for `hybrid_fm` with each other registered mixer in its last two stages
  (a shorter budget: the sweep ranks mixers in one setting, it does not train them to convergence).
- `--target` instead trains the target recipe (`TARGET_RECIPE`, chosen on the validation split only:
  docs/zoo.md, "The target"): as many epochs as 10 training minutes allow, the cosine following the
  time; it reports whether the model best on val reaches 93.5% test top-1 within those 10 minutes.
  `--target-models resnet_fm,bot_fm` runs other models under the same recipe. Each `--target` run
  keeps the earlier ones in the JSON (`target.previous`), with the CPU model and the load averages.

Timing: "train min" sums the training steps only (not validation, checkpoints, the test pass or
data loading); run pinned to one core with one thread (`taskset -c 1 ... --threads 1`), wall time
equals CPU time (also reported), which is how the 10-CPU-minute target is counted. FLOPs: forward,
batch 1, `torch.utils.flop_counter`. Inference img/s: batch 256, median of 5 calls, bf16 autocast
when the budget uses it, channels-last.

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fashion_mnist.py
    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fashion_mnist.py --target
    .venv/bin/python benchmarks/fashion_mnist.py --models resnet_fm,hybrid_fm[local] --minutes 2

Prints a markdown table and writes benchmarks/results/fashion_mnist.json (rewritten after every
model, so an interrupted run keeps what it finished; `--resume` skips rows already there with the
same budget; the zoo table, the target run and the recorded `recipe_search` runs are kept side by
side in the file). Timings on a shared
machine are noisy: compare within one run, read CPU time too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
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
from boxer.engine.config import AMP_HELP, AMP_MODES, amp_mode  # noqa: E402
from boxer.engine.precision import autocast  # noqa: E402
from boxer.errors import BoxerError  # noqa: E402
from boxer.layers import list_mixers  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "fashion_mnist.json"
ABLATION = ("mhsa", "mhsa_qr", "mhsa_abs")  # BoTNet's position ablation: qk, qr, qk + abs (bot_fm is qk + qr)
# the efficient-ViT deck's families (docs/zoo.md, models/efficient.py)
DECK_FAMILIES = ("emsnet_fm", "mat_fm", "partialformer_fm")
TARGET_TOP1, TARGET_MINUTES = 93.5, 10.0
# The target recipe (ClassifyConfig fields; the rest are the defaults), chosen on val top-1 only.
TARGET_RECIPE: dict[str, Any] = {"model": "resnet_fm_e2", "translate": 0}
BUDGET_KEYS = ("batch_size", "lr", "amp", "threads", "seed", "limit_train", "val_size")

Spec = tuple[str, str, dict[str, Any], str]  # label, registered model, keywords, budget group


def default_specs() -> list[Spec]:
    """(label, model, keywords, group) for every family; group "sweep" gets --sweep-minutes."""
    specs: list[Spec] = [("resnet_fm", "resnet_fm", {}, "main"), ("bot_fm", "bot_fm", {}, "main")]
    specs += [(f"bot_fm[{m}]", "bot_fm", {"mixer": m}, "main") for m in ABLATION]
    specs += [("vit_fm", "vit_fm", {}, "main"), ("swin_fm", "swin_fm", {}, "main")]
    specs += [(name, name, {}, "main") for name in DECK_FAMILIES]
    others = [m for m in list_mixers() if m not in (*ABLATION, "mhsa_rel")]
    return specs + [(f"hybrid_fm[{m}]", "hybrid_fm", {"mixer": m}, "sweep") for m in others]


def parse_specs(text: str | None) -> list[Spec]:
    """`resnet_fm,hybrid_fm[local]` -> specs (`[x]` sets the mixer); all get --minutes."""
    if not text:
        return default_specs()
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, _, rest = item.partition("[")
        out.append((item, name, {"mixer": rest.rstrip("]")} if rest else {}, "main"))
    return out


@torch.inference_mode()
def inference_cost(model: torch.nn.Module, amp: bool, batch: int = 256) -> tuple[float, float]:
    """(forward MFLOPs per image, inference images/s at `batch`)."""
    model.eval()
    one, many = model.example_input(1), model.example_input(batch)
    flops = count_flops(lambda: model(one))
    many = many.contiguous(memory_format=torch.channels_last)
    model.to(memory_format=torch.channels_last)
    with autocast("cpu", "bf16" if amp else "none"):
        seconds = median_seconds(lambda: model(many), torch.device("cpu"), warmup=1, repeats=5)
    return flops / 1e6, batch / seconds


def val_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(epoch, val top-1, training seconds so far) per epoch, from the run's metrics.jsonl."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [(r["epoch"], r["val_top1"], round(r["train_wall_s"], 1)) for r in records if "val_top1" in r]


def run_one(
    label: str, name: str, kw: dict[str, Any], budget: dict, args: argparse.Namespace, recipe: dict[str, Any]
) -> dict:
    """Trains one model under `budget` ({"epochs", "minutes"}) with the ClassifyConfig fields of
    `recipe` and measures it (in a fresh run dir)."""
    run_dir = Path(args.runs) / label.replace("[", "-").replace("]", "")
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the benchmark's own run directory: no stale metrics or checkpoints
    cfg = ClassifyConfig(
        **recipe,
        model=name,
        model_kwargs=kw,
        epochs=budget["epochs"],
        max_minutes=budget["minutes"],
        amp=args.amp,
        threads=args.threads,
        seed=args.seed,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        val_size=args.val_size,
        out=str(run_dir),
        progress=False,
    )
    res = train_classifier(cfg)
    run_dir = Path(res["run_dir"])
    model, _ = load_classifier(run_dir / "best")
    mflops, infer = inference_cost(model, args.amp == "bf16")
    train_size = args.limit_train or 55000
    return {
        "label": label,
        "model": name,
        "kwargs": kw,
        "epochs": res["epochs"],
        "epochs_seen": res["images_seen"] / train_size,
        "stopped_by_time": res["stopped_by_time"],
        "params_m": res["params"] / 1e6,
        "mflops": mflops,
        "val_top1": res["best_val_top1"],
        "test_top1": res["test_top1"],
        "test_top5": res["test_top5"],
        "train_wall_s": res["train_wall_s"],
        "train_cpu_s": res["train_cpu_s"],
        "train_img_s": res["images_seen"] / res["train_wall_s"],
        "infer_img_s": infer,
        "val_curve": val_curve(run_dir),
        "run_dir": str(run_dir),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | params (M) | MFLOPs | train min | CPU min | epochs seen | train img/s | infer img/s | "
        "val top-1 | test top-1 | test top-5 |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['params_m']:.3f} | {r['mflops']:.1f} | {r['train_wall_s'] / 60:.1f} | "
            f"{r['train_cpu_s'] / 60:.1f} | {r['epochs_seen']:.2f} | {r['train_img_s']:.0f} | "
            f"{r['infer_img_s']:.0f} | {r['val_top1']:.2f} | {r['test_top1']:.2f} | {r['test_top5']:.2f} |"
        )
    return "\n".join(lines)


def target_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The target check: the test top-1 of the model best on val among those trained within
    TARGET_MINUTES (the test split chooses nothing)."""
    within = [r for r in rows if r["train_cpu_s"] <= TARGET_MINUTES * 60 * 1.001]
    best = max(within or rows, key=lambda r: r["val_top1"])
    return {
        "best": best["label"],
        "val_top1": best["val_top1"],
        "test_top1": best["test_top1"],
        "train_minutes": best["train_wall_s"] / 60,
        "train_cpu_minutes": best["train_cpu_s"] / 60,
        "reached": bool(within) and best["test_top1"] >= TARGET_TOP1,
        "target": f">= {TARGET_TOP1}% test top-1 within {TARGET_MINUTES:.0f} CPU-minutes of training",
    }


def cpu_model() -> str:
    """The CPU's model name (what `lscpu` prints), or the architecture when /proc/cpuinfo is absent."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.machine())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated, e.g. resnet_fm,bot_fm,hybrid_fm[local] (default: all)")
    p.add_argument("--minutes", type=float, default=3.0, help="training minutes of each family")
    p.add_argument("--sweep-minutes", type=float, default=1.5, help="training minutes per sweep run")
    p.add_argument("--max-epochs", type=int, default=100, help="epoch cap of the timed runs")
    p.add_argument("--target", action="store_true", help="run the 10-minute target recipe instead")
    p.add_argument("--target-models", default=TARGET_RECIPE["model"], help="models of --target")
    p.add_argument(
        "--target-epochs", type=int, default=100, help="epoch cap of --target (the 10 minutes end it first)"
    )
    p.add_argument("--batch-size", type=int, help="default: ClassifyConfig's, TARGET_RECIPE's for --target")
    p.add_argument("--lr", type=float, help="default: ClassifyConfig's, TARGET_RECIPE's for --target")
    p.add_argument("--amp", type=amp_mode, choices=AMP_MODES, default="bf16", help=AMP_HELP)
    p.add_argument("--threads", type=int, default=1, help="torch threads (pin the process to as many cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=int, help="smoke runs only: N training images")
    p.add_argument("--limit-test", type=int, help="smoke runs only: N test images")
    p.add_argument("--val-size", type=int, default=ClassifyConfig().val_size, help="held-out training images")
    p.add_argument("--runs", default=str(ROOT / "runs" / "fashion_mnist"), help="run directories")
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    p.add_argument("--resume", action="store_true", help="skip rows already in --out with this budget")
    args = p.parse_args()
    defaults = {**ClassifyConfig().to_dict(), **(TARGET_RECIPE if args.target else {})}
    for key in ("batch_size", "lr"):
        setattr(args, key, defaults[key] if getattr(args, key) is None else getattr(args, key))
    if min(args.max_epochs, args.target_epochs, args.batch_size, args.threads) < 1:
        raise SystemExit("fashion_mnist.py: epochs, batch size and threads must be >= 1")
    if min(args.minutes, args.sweep_minutes) <= 0:
        raise SystemExit("fashion_mnist.py: --minutes and --sweep-minutes must be positive")

    section = "target" if args.target else "zoo"
    if args.target:
        specs = [(label, name, kw, "target") for label, name, kw, _ in parse_specs(args.target_models)]
        groups = {"target": {"epochs": args.target_epochs, "minutes": TARGET_MINUTES}}
    else:
        specs = parse_specs(args.models)
        groups = {
            "main": {"epochs": args.max_epochs, "minutes": args.minutes},
            "sweep": {"epochs": args.max_epochs, "minutes": args.sweep_minutes},
        }
    budget = {
        "groups": groups,
        **{k: getattr(args, k) for k in BUDGET_KEYS},
    }
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    rows: list[dict[str, Any]] = []
    if args.resume and old.get(section, {}).get("budget") == budget:
        rows = old[section]["rows"]
    started = time.time()
    overrides = {k: v for k, v in TARGET_RECIPE.items() if k != "model"} if args.target else {}
    overrides.update({k: getattr(args, k) for k in ("batch_size", "lr")})
    recipe = {**ClassifyConfig().to_dict(), **overrides, "amp": args.amp}
    if args.target:
        recipe["model"] = TARGET_RECIPE["model"]
    meta = {
        "budget": budget,
        "recipe": recipe,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), "
        f"{args.threads} torch thread(s), affinity {sorted(os.sched_getaffinity(0))}",
        "torch": torch.__version__,
        "load_average_start": os.getloadavg(),
        "command": " ".join(sys.argv),
    }
    if args.target and not rows:  # a new target run: the earlier ones stay in the file
        last = dict(old.get("target") or {})
        previous = last.pop("previous", [])
        meta["previous"] = previous + ([last] if last else [])
    elif args.target:
        meta["previous"] = old["target"].get("previous", [])
    done = {r["label"] for r in rows}
    for label, name, kw, group in specs:
        if label in done:
            continue
        g = groups[group]
        print(f"== {label} (up to {g['epochs']} epochs, {g['minutes']} min)", flush=True)
        try:
            rows.append(run_one(label, name, kw, g, args, overrides))
        except BoxerError as err:
            raise SystemExit(f"fashion_mnist.py: {label}: {err}") from None
        meta["load_average_end"] = os.getloadavg()
        meta["total_wall_s"] = time.time() - started
        if args.target:
            meta["verdict"] = target_verdict(rows)
        old = json.loads(out.read_text()) if out.is_file() else {}
        doc = {k: v for k, v in old.items() if k in ("zoo", "target", "recipe_search")}
        doc = {"benchmark": "fashion_mnist", **doc, section: {**meta, "rows": rows}}
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    print()
    print(table(rows))
    if args.target:
        v = target_verdict(rows)
        print(
            f"\ntarget ({v['target']}): {'reached' if v['reached'] else 'NOT reached'}; best on val "
            f"{v['best']} ({v['val_top1']:.2f}% val) {v['test_top1']:.2f}% test after "
            f"{v['train_minutes']:.1f} min ({v['train_cpu_minutes']:.1f} CPU-min) of training"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
