"""`boxer train-cls` and `boxer eval-cls`: image classification (Fashion-MNIST) with any classifier.

Flags as `boxer train`'s: `--config PRESET`, `--resume CKPT`, `--init CKPT`, `--set key=value` (config
keys, and model keywords as `model.key=value` or a bare `key=value`, e.g. `--set mixer=local --set
mixer_stages=(3,)`), parsed as `boxer train` parses them: Python literals, true/false/none, else
plain strings. Precedence: defaults < preset < flags < `--set`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from boxer.cli.help import config_flag_adder
from boxer.engine.config import AMP_HELP, AMP_MODES, amp_mode
from boxer.errors import BoxerError


def parse_model_kwargs(items: list[str] | None) -> dict[str, Any]:
    """`["mixer=local", "mixer_stages=(3,)"]` -> {"mixer": "local", "mixer_stages": (3,)}.

    The `--set` grammar of `boxer train` (`boxer.engine.config`): a `model.` prefix is optional here.
    """
    from boxer.engine.config import parse_model_value, parse_set_args

    return {
        key.removeprefix("model."): parse_model_value(text) for key, text in parse_set_args(items).items()
    }


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
    p.add_argument(
        "--config", metavar="PRESET", help="a preset under configs/ (name or .py path; CONFIG = dict of "
        "train-cls keys); default: none",
    )  # fmt: skip
    flag = config_flag_adder(p, d)
    flag("--model", help="registered classifier")
    flag("--data", help="dataset: fashion-mnist")
    p.add_argument("--data-root", help="folder with the dataset files (default: boxer.data's search)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/cls-<model>-<time>)")
    p.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue exactly from a checkpoint (RUN_DIR/last); default: a new run",
    )
    p.add_argument(
        "--init", metavar="CKPT", help="initialise weights from a checkpoint or weights file; loads what "
        "fits by name and shape (default: none)",
    )  # fmt: skip
    flag("--epochs", type=int, help="passes over the training split")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="cap on training time (epochs only, not validation); the cosine schedule follows the "
        "larger of step and time progress, so a capped run still anneals before it stops (default: no cap)",
    )
    flag("--batch-size", type=int, help="images per step")
    flag("--lr", type=float, help="peak AdamW learning rate")
    flag("--weight-decay", type=float, help="AdamW weight decay of weights")
    flag("--warmup-epochs", type=float, help="linear warm-up length")
    flag("--label-smoothing", type=float, help="cross-entropy smoothing")
    flag("--translate", type=int, help="random shift in pixels (0 = off)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    flag("--erase", type=float, help="random-erasing probability")
    flag("--amp", type=amp_mode, choices=AMP_MODES, help=AMP_HELP)
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW tensors (default NHWC)")
    flag("--val-size", type=int, help="training images held out for validation")
    flag("--seed", type=int, help="random seed")
    p.add_argument("--limit-train", type=int, help="use only N training images (smoke runs; default: all)")
    p.add_argument("--limit-test", type=int, help="evaluate only N test images (smoke runs; default: all)")
    p.add_argument("--image-size", type=int, help="resize inputs (default: the model's own size)")
    flag("--device", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="override a config key (epochs=3) or set a model keyword (model.mixer=local; a key that is "
        "not a config key is a model keyword); default: none",
    )
    p.set_defaults(func=run_train)

    e = sub.add_parser("eval-cls", help="top-1/top-5 of a classification checkpoint")
    e.add_argument(
        "--checkpoint", metavar="CKPT", help="RUN_DIR/best, RUN_DIR/last or RUN_DIR (required; no default)"
    )
    e.add_argument(
        "positional_checkpoint",
        nargs="?",
        metavar="CKPT",
        help="deprecated: the same as --checkpoint CKPT (default: none)",
    )
    e.add_argument("--split", choices=("val", "test"), default="test", help="which held-out images")
    e.add_argument("--data-root", help="folder with the dataset files (default: boxer.data's search)")
    e.add_argument("--json", metavar="PATH", help="also write the metrics as JSON (default: no file)")
    e.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from boxer.classification import train_classifier
    from boxer.classification.config import resolve_classify_config

    flags = {k: getattr(args, k) for k in (*_SAME_NAMES, "init")}
    flags["flip"] = False if args.no_flip else None
    flags["channels_last"] = False if args.no_channels_last else None
    flags["progress"] = False if args.no_progress else None
    cfg = resolve_classify_config(args.config, flags, args.set)
    results = train_classifier(cfg, resume=args.resume)
    print(json.dumps(results, indent=2))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from boxer.classification import evaluate_classifier
    from boxer.engine.checkpoint import atomic_write_text

    if args.checkpoint and args.positional_checkpoint:
        raise BoxerError("eval-cls: give the checkpoint once, as --checkpoint CKPT")
    checkpoint = args.checkpoint or args.positional_checkpoint
    if not checkpoint:
        raise BoxerError("eval-cls: --checkpoint CKPT is required (RUN_DIR/best, RUN_DIR/last or RUN_DIR)")
    metrics = evaluate_classifier(checkpoint, split=args.split, data_root=args.data_root)
    print(
        f"{metrics['model']} on {metrics['split']} ({metrics['count']} images): "
        f"top-1 {metrics['top1']:.2f}%, top-5 {metrics['top5']:.2f}%, loss {metrics['loss']:.4f}"
    )
    if args.json:
        from pathlib import Path

        atomic_write_text(Path(args.json), json.dumps(metrics, indent=2) + "\n")
    return 0
