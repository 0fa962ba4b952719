"""`boxer train-cls` and `boxer eval-cls`: image classification (Fashion-MNIST) with any classifier.

Model keywords come as `--set key=value` (e.g. `--set mixer=local --set mixer_stages=(3,)`); values
are Python literals or plain strings.
"""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any

from boxer.errors import BoxerError


def parse_model_kwargs(items: list[str] | None) -> dict[str, Any]:
    """`["mixer=local", "mixer_stages=(3,)"]` -> {"mixer": "local", "mixer_stages": (3,)}."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().removeprefix("model.")
        if not sep or not key:
            raise BoxerError(f"--set: expected key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key] = text.strip()
    return out


_SAME_NAMES = (
    "model", "data", "data_root", "out", "epochs", "max_minutes", "batch_size", "lr", "weight_decay",
    "warmup_epochs", "label_smoothing", "translate", "erase", "amp", "val_size", "seed", "limit_train",
    "limit_test", "image_size", "device", "threads",
)  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    from boxer.classification.config import ClassifyConfig

    d = ClassifyConfig()
    p = sub.add_parser(
        "train-cls",
        help="train an image classifier (ResNet, BoTNet, hybrid mixers, ViT, Swin) on Fashion-MNIST",
        description="Train a registered classifier. The official train split loses --val-size images to "
        "validation (checkpoint selection); the test split is evaluated once, at the end.",
    )
    p.add_argument("--model", default=d.model, help=f"registered classifier (default {d.model})")
    p.add_argument("--data", default=d.data, help="dataset: fashion-mnist")
    p.add_argument("--data-root", help="folder with the dataset files (default: boxer.data's search)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/cls-<model>-<time>)")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (RUN_DIR/last)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument(
        "--max-minutes",
        type=float,
        help="cap on training time (epochs only, not validation); the cosine schedule follows the "
        "larger of step and time progress, so a capped run still anneals before it stops",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--translate", type=int, default=d.translate, help="random shift in pixels (0 = off)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--erase", type=float, default=d.erase, help="random-erasing probability")
    p.add_argument("--amp", choices=("off", "bf16"), default=d.amp, help="bfloat16 autocast")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW tensors (default NHWC)")
    p.add_argument("--val-size", type=int, default=d.val_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--limit-train", type=int, help="use only N training images (smoke runs)")
    p.add_argument("--limit-test", type=int, help="evaluate only N test images (smoke runs)")
    p.add_argument("--image-size", type=int, help="resize inputs (default: the model's own size)")
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="model keywords")
    p.set_defaults(func=run_train)

    e = sub.add_parser("eval-cls", help="top-1/top-5 of a classification checkpoint")
    e.add_argument("checkpoint", help="RUN_DIR/best, RUN_DIR/last or RUN_DIR")
    e.add_argument("--split", choices=("val", "test"), default="test")
    e.add_argument("--data-root", help="folder with the dataset files")
    e.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")
    e.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from boxer.classification import ClassifyConfig, train_classifier

    values = {k: getattr(args, k) for k in _SAME_NAMES}
    cfg = ClassifyConfig(
        **values,
        model_kwargs=parse_model_kwargs(args.set),
        flip=not args.no_flip,
        channels_last=not args.no_channels_last,
        progress=not args.no_progress,
    )
    results = train_classifier(cfg, resume=args.resume)
    print(json.dumps(results, indent=2))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from boxer.classification import evaluate_classifier
    from boxer.engine.checkpoint import atomic_write_text

    metrics = evaluate_classifier(args.checkpoint, split=args.split, data_root=args.data_root)
    print(
        f"{metrics['model']} on {metrics['split']} ({metrics['count']} images): "
        f"top-1 {metrics['top1']:.2f}%, top-5 {metrics['top5']:.2f}%, loss {metrics['loss']:.4f}"
    )
    if args.json:
        from pathlib import Path

        atomic_write_text(Path(args.json), json.dumps(metrics, indent=2) + "\n")
    return 0
