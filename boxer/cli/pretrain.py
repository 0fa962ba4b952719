"""`boxer pretrain-backbone`: Fashion-MNIST classification pretraining of a detection backbone.

Flags as `boxer train`'s where they apply: `--config PRESET` (CONFIG = dict of the keys of
`PretrainConfig`), `--set key=value`, `--init WEIGHTS`; precedence defaults < preset < flags <
`--set`. `--resume` is refused: pretraining keeps no run directory (docs/training.md).
"""

from __future__ import annotations

import argparse

from boxer.cli.help import config_flag_adder
from boxer.engine.pretrain_config import PretrainConfig
from boxer.errors import BoxerError

_D = PretrainConfig()
_FLAGS = (
    "backbone", "out", "size", "epochs", "max_minutes", "batch_size", "lr", "val_size", "workers",
    "seed", "amp", "fashion_root", "exclude_classes", "init",
)  # fmt: skip
NO_RESUME = (
    "--resume: pretrain-backbone keeps no run directory to resume from; run it again, or continue "
    "from its weights with --init OUT (the schedule restarts)"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain-backbone",
        help="pretrain a detection backbone on Fashion-MNIST items (the FashionScenes analogue of ImageNet)",
        description="Train a backbone to classify Fashion-MNIST items rendered in the FashionScenes style "
        "(train split only), then write its weights for `--set model.pretrained_backbone=OUT`.",
    )
    flag = config_flag_adder(p, _D)
    p.add_argument(
        "--config", metavar="PRESET", help="a preset under configs/ (name or .py path; CONFIG = dict of "
        "pretraining keys); default: none",
    )  # fmt: skip
    flag("--backbone", help="registered backbone")
    flag("--out", help="weights file to write (.safetensors; a .json report beside it)")
    p.add_argument(
        "--init", metavar="WEIGHTS", help="start the backbone from these weights (e.g. an earlier "
        "pretraining's OUT; loaded by the backbone's pretrained=PATH loader); default: random init",
    )  # fmt: skip
    p.add_argument("--resume", metavar="CKPT", help="not supported (no run directory); default: none")
    flag("--size", type=int, help="rendered image side")
    flag("--epochs", type=float, help="passes over the items")
    flag("--max-minutes", type=float, help="stop after this long (0 = no cap)")
    flag("--batch-size", type=int, help="images per step")
    flag("--lr", type=float, help="peak AdamW learning rate")
    flag("--val-size", type=int, help="train items held out for validation")
    flag("--workers", type=int, help="rendering processes")
    flag("--amp", choices=["bf16", "none"], help="bf16 autocast or none")
    flag("--seed", type=int, help="random seed")
    p.add_argument(
        "--fashion-root",
        help="folder with the Fashion-MNIST IDX files (default: $BOXER_FASHION_MNIST, then the usual "
        "search, docs/data.md)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--exclude-classes",
        metavar="NAMES",
        help="comma-separated classes left out of pretraining, e.g. 'Bag,Ankle boot' (held-out "
        "classes; default: none)",
    )
    p.add_argument(
        "--set", nargs="+", action="extend", metavar="KEY=VALUE",
        help="override a pretraining key (e.g. weight_decay=0.1); default: none",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.engine.pretrain import pretrain_backbone
    from boxer.engine.pretrain_config import resolve_pretrain_config

    if args.resume:
        raise BoxerError(NO_RESUME)
    flags = {k: getattr(args, k) for k in _FLAGS}
    flags["progress"] = False if args.no_progress else None
    cfg = resolve_pretrain_config(args.config, flags, args.set)
    report = pretrain_backbone(cfg)
    print(
        f"pretrained {report['backbone']}: {report['steps']} steps ({report['images_seen']} images) in "
        f"{report['train_seconds']:.0f} s, held-out top-1 {report['val_top1']:.1f}% -> {cfg.out}"
    )
    return 0
