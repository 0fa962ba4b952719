"""Zero-shot check of BoxeR-2D's open-vocabulary text head on FashionScenes (docs/open_vocabulary.md).

The text head (`boxer/models/boxer2d/text_head.py`, after OWL-ViT: Minderer et al., ECCV 2022)
classifies by cosine similarity with class-name text embeddings (all-MiniLM-L6-v2, `boxer[text]`).
Held-out classes are kept out of everything the model learns from: the training scenes never draw
them (`boxer data fashion-scenes --exclude-classes`), the backbone pretraining never sees them
(`boxer pretrain-backbone --exclude-classes`), and their names are not in the training vocabulary.
Then, on FashionScenes val (all ten classes), the held-out classes are detected by name only.

Per held-out class and seed, box AP50 of:
- text: the held-out model, vocabulary = all ten class names (seen and held-out compete);
- text, held-out names only: vocabulary = the held-out names (no seen class to lose to);
- shuffled: the held-out model with its text embeddings permuted among the ten classes (chance),
  the mean over `--shuffles` random derangements. Permuting the embedding rows permutes the logit
  columns, so it is computed exactly by relabelling the unshuffled predictions;
- supervised: the same text-head model trained on all classes (FashionScenes train, backbone
  pretrained on all classes): the upper bound.
It also prints the text-embedding cosine of each held-out name with every seen name, and what the
held-out model calls the held-out objects (the class of its best detection at IoU >= 0.5).

    .venv/bin/python benchmarks/open_vocabulary.py --stage train   # data, pretraining, 4 trainings
    .venv/bin/python benchmarks/open_vocabulary.py --stage eval    # the table and the JSON

Writes benchmarks/results/open_vocabulary.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "open_vocabulary.json"
HOLDOUT = "T-shirt/top,Bag,Ankle boot"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=["train", "eval", "all"], default="all")
    p.add_argument(
        "--data", default=str(ROOT / "data" / "fashion-scenes"), help="FashionScenes (val evaluated)"
    )
    p.add_argument("--work", default="/tmp/ov", help="held-out data, backbones and runs go here")
    p.add_argument("--holdout", default=HOLDOUT, help="comma-separated held-out classes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--iters", type=int, default=600, help="training iterations per run (LR x0.1 at 80%%)")
    p.add_argument("--pretrain-minutes", type=float, default=4.0)
    p.add_argument(
        "--supervised-backbone",
        default="/tmp/pt/r18.safetensors",
        help="backbone pretrained on all classes for the supervised runs (made here if missing)",
    )
    p.add_argument("--shuffles", type=int, default=20, help="random derangements for the chance baseline")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    return p.parse_args(argv)


def boxer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "boxer.cli.main", *args]


def run(cmd: list[str], log: Path) -> None:
    """Runs a boxer command, its output into `log`; stops the benchmark if it fails."""
    print(f"$ {' '.join(cmd[2:])}  (log {log})", flush=True)
    start = time.monotonic()
    with open(log, "w") as f:
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if code:
        sys.exit(f"failed ({code}): see {log}")
    print(f"  done in {time.monotonic() - start:.0f} s", flush=True)


def train_args(args, data: str, backbone: str, out: Path, seed: int) -> list[str]:
    """The demo recipe (configs/fashion_scenes_demo.py) with the text head, a fixed number of
    iterations (LR drop at 80%, no clock) and one thread, no evaluation during training."""
    sets = [
        "model.class_head=text",
        f"model.pretrained_backbone={backbone}",
        f"seed={seed}",
        f"max_iters={args.iters}",
        f"lr_steps=[{int(args.iters * 0.8)}]",
        "time_schedule=False",
        "max_minutes=0",
        "eval_every=0",
        f"num_threads={args.threads}",
        "workers=0",
        "progress=False",
    ]
    return ["train", "--config", "fashion_scenes_demo", "--data", data, "--out", str(out), "--set", *sets]


def stage_train(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    seen = work / "fs_seen"
    if not (seen / "annotations" / "instances_train.json").exists():
        run(
            boxer_cmd(
                "data",
                "fashion-scenes",
                "--out",
                str(seen),
                "--train",
                "1600",
                "--val",
                "50",
                "--seed",
                "0",
                "--workers",
                "1",
                "--exclude-classes",
                args.holdout,
            ),
            work / "data.log",
        )
    if not Path(args.supervised_backbone).exists():
        run(
            boxer_cmd(
                "pretrain-backbone",
                "--out",
                args.supervised_backbone,
                "--max-minutes",
                str(args.pretrain_minutes),
                "--no-progress",
            ),
            work / "pt_all.log",
        )
    for seed in args.seeds:
        backbone = work / f"pt_seen_s{seed}.safetensors"
        if not backbone.exists():
            run(
                boxer_cmd(
                    "pretrain-backbone",
                    "--out",
                    str(backbone),
                    "--max-minutes",
                    str(args.pretrain_minutes),
                    "--seed",
                    str(seed),
                    "--workers",
                    "1",
                    "--no-progress",
                    "--exclude-classes",
                    args.holdout,
                ),
                work / f"pt_s{seed}.log",
            )
        for kind, data, bb in (
            ("heldout", str(seen), str(backbone)),
            ("supervised", args.data, args.supervised_backbone),
        ):
            out = work / f"{kind}_s{seed}"
            if not (out / "last" / "model.safetensors").exists():
                run(boxer_cmd(*train_args(args, data, bb, out, seed)), work / f"{kind}_s{seed}.log")


# ---------------------------------------------------------------- evaluation


def derangements(n: int, count: int, seed: int = 0) -> list[list[int]]:
    """`count` random permutations of range(n) without a fixed point (no class keeps its own text)."""
    import torch

    g, out = torch.Generator().manual_seed(seed), []
    while len(out) < count:
        p = torch.randperm(n, generator=g).tolist()
        if all(p[i] != i for i in range(n)):
            out.append(p)
    return out


def predictions(model, config, dataset, names: list[str]) -> dict[int, dict]:
    """Image id -> detections of `model` with classes `names` (label i = names[i])."""
    import torch

    from boxer.data import collate_detection
    from boxer.engine.evaluate import predict_batches
    from boxer.engine.vocabulary import name_classes

    name_classes(model, config, names, checkpoint="benchmark", flag="classes")
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate_detection)
    return predict_batches(model, loader, torch.device("cpu"), "bf16")


def ap50(dataset, preds: dict[int, dict], cat_ids: list[int]) -> dict[str, float]:
    """Box AP50 per class name of `cat_ids` (label i -> cat_ids[i])."""
    from boxer.evaluation import CocoEvaluator

    ev = CocoEvaluator(dataset.ann_file, cat_ids=cat_ids, verbose=False)
    ev.update(preds)
    stats = ev.evaluate()
    return {k.split("/", 2)[2]: v for k, v in stats.items() if k.startswith("bbox/AP50/")}


def relabelled(preds: dict[int, dict], inverse: list[int]) -> dict[int, dict]:
    """The predictions of the model whose text row c is the embedding of perm[c]: its logit column c
    is the original column perm[c], so a detection of label l becomes label inverse[l]."""
    import torch

    inv = torch.tensor(inverse)
    return {i: {**p, "labels": inv[p["labels"]]} for i, p in preds.items()}


def confusions(dataset, preds: dict[int, dict], names: list[str], cat_ids: list[int], hold: list[str]):
    """For each held-out class: how often the best-scoring detection at IoU >= 0.5 on one of its
    ground-truth boxes carries each label (or none)."""
    import torch
    from torchvision.ops import box_iou

    coco = dataset.coco if hasattr(dataset, "coco") else None
    from pycocotools.coco import COCO

    coco = coco or COCO(dataset.ann_file)
    out = {h: {} for h in hold}
    for h in hold:
        cat = cat_ids[names.index(h)]
        for ann in coco.loadAnns(coco.getAnnIds(catIds=[cat], iscrowd=False)):
            x, y, w, hh = ann["bbox"]
            gt = torch.tensor([[x, y, x + w, y + hh]])
            p = preds[ann["image_id"]]
            iou = box_iou(gt, p["boxes"].float())[0] if len(p["boxes"]) else torch.zeros(0)
            ok = (iou >= 0.5).nonzero().flatten()
            key = "none" if len(ok) == 0 else names[int(p["labels"][ok[p["scores"][ok].argmax()]])]
            out[h][key] = out[h].get(key, 0) + 1
    return out


def text_neighbours(config, hold: list[str], seen: list[str]) -> dict[str, dict[str, float]]:
    """Cosine of each held-out name's text embedding with each seen name's (the checkpoint's prompt)."""
    from boxer.models.text import encode_prompts

    kw = config.get("model_kwargs", {})
    emb = encode_prompts(
        hold + seen, encoder=kw.get("text_encoder", "minilm"), template=kw.get("text_prompt", "{name}")
    )
    sim = emb[: len(hold)] @ emb[len(hold) :].t()
    return {h: {s: round(float(sim[i, j]), 3) for j, s in enumerate(seen)} for i, h in enumerate(hold)}


def evaluate_seed(args, seed: int, dataset, names, cat_ids, hold) -> dict:
    from boxer.engine.runner import load_detector

    work, device = Path(args.work), __import__("torch").device("cpu")
    model, config = load_detector(work / f"heldout_s{seed}" / "last", device)
    trained = list(config["class_names"])
    leaked = [h for h in hold if h in trained]
    if leaked:
        sys.exit(f"heldout_s{seed}: trained with held-out classes {leaked}")
    full = predictions(model, config, dataset, names)
    text = ap50(dataset, full, cat_ids)
    only = ap50(dataset, predictions(model, config, dataset, hold), [cat_ids[names.index(h)] for h in hold])
    perms = derangements(len(names), args.shuffles, seed)
    shuffled = [
        ap50(dataset, relabelled(full, sorted(range(len(p)), key=p.__getitem__)), cat_ids) for p in perms
    ]
    sup_model, sup_config = load_detector(work / f"supervised_s{seed}" / "last", device)
    supervised = ap50(dataset, predictions(sup_model, sup_config, dataset, names), cat_ids)
    return {
        "seed": seed,
        "trained_classes": trained,
        "text": text,
        "text_heldout_vocabulary": only,
        "shuffled_mean": {n: sum(s[n] for s in shuffled) / len(shuffled) for n in names},
        "shuffled_max": {n: max(s[n] for s in shuffled) for n in names},
        "supervised": supervised,
        "confusions": confusions(dataset, full, names, cat_ids, hold),
        "neighbours": text_neighbours(config, hold, [n for n in names if n not in hold]),
        "learned_scale": round(float(model.text_head.log_scale.detach().exp()), 3),
    }


def cached_seed(args, seed: int, dataset, names, cat_ids, hold) -> dict:
    """`evaluate_seed`, kept in WORK/eval_s<seed>.json and reused while it is newer than both runs'
    checkpoints and was made for the same held-out classes and shuffles."""
    work = Path(args.work)
    cache = work / f"eval_s{seed}.json"
    runs = [work / f"{k}_s{seed}" / "last" / "model.safetensors" for k in ("heldout", "supervised")]
    key = {"holdout": hold, "shuffles": args.shuffles, "data": str(Path(args.data).resolve())}
    if cache.exists() and all(cache.stat().st_mtime > r.stat().st_mtime for r in runs):
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["record"]
    record = evaluate_seed(args, seed, dataset, names, cat_ids, hold)
    cache.write_text(json.dumps({"key": key, "record": record}, indent=1))
    return record


COLUMNS = [
    ("text", "text"),
    ("text_heldout_vocabulary", "text, held-out names"),
    ("shuffled_mean", "shuffled (chance)"),
    ("supervised", "supervised"),
]


def _mean(values: list[float]) -> float:
    """Mean of the defined values (COCO gives -1 for a class without ground truth)."""
    ok = [v for v in values if v is not None and v >= 0]
    return sum(ok) / len(ok) if ok else float("nan")


def table(records: list[dict], hold: list[str], names: list[str]) -> list[str]:
    """Rows: each held-out class per seed and over seeds, then the means over held-out and seen classes."""
    seen = [n for n in names if n not in hold]
    lines = [f"{'class':<14} {'seed':>5} " + " ".join(f"{label:>20}" for _, label in COLUMNS)]

    def row(label: str, seed: str, members: list[str], rs: list[dict]) -> str:
        vals = [_mean([r[k].get(n, -1.0) for r in rs for n in members]) for k, _ in COLUMNS]
        cells = (f"{v:>20.3f}" if v == v else f"{'-':>20}" for v in vals)  # NaN: nothing to average
        return f"{label:<14} {seed:>5} " + " ".join(cells)

    for n in hold:
        lines += [row(n, str(r["seed"]), [n], [r]) for r in records] + [row(n, "mean", [n], records)]
    lines += [row("held-out mean", "mean", hold, records), row("seen mean", "mean", seen, records)]
    return lines


def stage_eval(args) -> None:
    import torch

    from boxer.engine.data import coco_dataset, resolve_split

    torch.set_num_threads(args.threads)
    start = time.monotonic()
    dataset = coco_dataset(
        resolve_split(args.data, "val"), train=False, image_size=256, max_size=256, with_masks=False
    )
    names, cat_ids = list(dataset.class_names), list(dataset.cat_ids)
    hold = [n.strip() for n in args.holdout.split(",")]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' index chatter
        records = [cached_seed(args, s, dataset, names, cat_ids, hold) for s in args.seeds]
    lines = table(records, hold, names)
    print(f"box AP50 on FashionScenes val ({len(dataset)} images), held-out classes by name only")
    print("\n".join(lines))
    for r in records:
        print(
            f"seed {r['seed']}: what the held-out model calls held-out objects (best detection, IoU >= 0.5):"
        )
        for h, c in r["confusions"].items():
            print(f"  {h:<12} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])))
    print("text cosine of each held-out name with the seen names:")
    for h, sims in records[0]["neighbours"].items():
        print(
            f"  {h:<12} " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(sims.items(), key=lambda kv: -kv[1]))
        )
    report = {
        "args": {k: v for k, v in vars(args).items()},
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "load_avg_at_eval": os.getloadavg(),
        "eval_seconds": round(time.monotonic() - start, 1),
        "holdout": hold,
        "records": records,
        "table": lines,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.stage in ("train", "all"):
        stage_train(args)
    if args.stage in ("eval", "all"):
        stage_eval(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
