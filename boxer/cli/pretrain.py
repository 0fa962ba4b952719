"""`boxer pretrain-backbone`: Fashion-MNIST classification pretraining of a detection backbone."""

from __future__ import annotations

import argparse

from boxer.engine.pretrain_config import PretrainConfig

_D = PretrainConfig()


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pretrain-backbone",
        help="pretrain a detection backbone on Fashion-MNIST items (the FashionScenes analogue of ImageNet)",
        description="Train a backbone to classify Fashion-MNIST items rendered in the FashionScenes style "
        "(train split only), then write its weights for `--set model.pretrained_backbone=OUT`.",
    )
    parser.add_argument(
        "--backbone", default=_D.backbone, help=f"registered backbone (default {_D.backbone})"
    )
    parser.add_argument(
        "--out", required=True, help="weights file to write (.safetensors; a .json report beside it)"
    )
    parser.add_argument("--size", type=int, default=_D.size, help=f"rendered image side (default {_D.size})")
    parser.add_argument(
        "--epochs", type=float, default=_D.epochs, help=f"passes over the items (default {_D.epochs})"
    )
    parser.add_argument(
        "--max-minutes", type=float, default=_D.max_minutes, help="stop after this long (0 = no cap)"
    )
    parser.add_argument("--batch-size", type=int, default=_D.batch_size, help=f"default {_D.batch_size}")
    parser.add_argument("--lr", type=float, default=_D.lr, help=f"peak AdamW learning rate (default {_D.lr})")
    parser.add_argument(
        "--val-size", type=int, default=_D.val_size, help="train items held out for validation"
    )
    parser.add_argument("--workers", type=int, default=_D.workers, help="rendering processes")
    parser.add_argument(
        "--amp", default=_D.amp, choices=["bf16", "none"], help="bf16 autocast (default) or none"
    )
    parser.add_argument("--seed", type=int, default=_D.seed, help="random seed")
    parser.add_argument(
        "--fashion-root",
        default=None,
        help=(
            "folder with the Fashion-MNIST IDX files (default: "
            "$BOXER_FASHION_MNIST, then the usual search, docs/data.md)"
        ),
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--exclude-classes",
        default="",
        metavar="NAMES",
        help="comma-separated classes left out of pretraining, e.g. 'Bag,Ankle boot' (held-out classes)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.engine.pretrain import pretrain_backbone

    cfg = PretrainConfig(
        backbone=args.backbone,
        out=args.out,
        size=args.size,
        epochs=args.epochs,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        val_size=args.val_size,
        workers=args.workers,
        seed=args.seed,
        amp=args.amp,
        fashion_root=args.fashion_root,
        progress=not args.no_progress,
        exclude_classes=args.exclude_classes,
    )
    report = pretrain_backbone(cfg)
    print(
        f"pretrained {report['backbone']}: {report['steps']} steps ({report['images_seen']} images) in "
        f"{report['train_seconds']:.0f} s, held-out top-1 {report['val_top1']:.1f}% -> {args.out}"
    )
    return 0
