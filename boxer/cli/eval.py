"""`boxer eval`: COCO evaluation of a trained checkpoint (bbox, and segm for mask models)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a trained checkpoint with the COCO protocol",
        description="Prints the 12-line COCO summary for boxes (and masks for mask models). Refuses "
        "a checkpoint without trained weights, so a missing --checkpoint never gives a silent AP of 0.",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint dir (RUN/last, RUN/best)")
    p.add_argument("--data", metavar="DIR", default="", help="COCO-layout dataset folder")
    p.add_argument("--split", default="val", help="split of DIR to evaluate (default val)")
    p.add_argument("--images", default="", help="image folder (instead of DIR/<split>)")
    p.add_argument(
        "--ann", default="", help="annotation JSON (default DIR/annotations/instances_<split>.json)"
    )
    p.add_argument("--batch-size", type=_at_least(1), default=1, help="images per forward pass (default 1)")
    p.add_argument(
        "--workers", type=_at_least(0), default=0, help="data-loading worker processes (default 0)"
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (default auto)")
    p.add_argument(
        "--results",
        metavar="JSON",
        help="also write the COCO results JSON here (checked first; default: not written)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --results file")
    p.add_argument(
        "--classes",
        metavar="NAMES",
        help="open vocabulary: detect and evaluate only these comma-separated categories of the split, "
        "by name (a checkpoint with a text head, class_head=text; docs/open_vocabulary.md; "
        "default: all the trained classes)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.engine.runner import evaluate_checkpoint
    from boxer.engine.vocabulary import parse_names

    classes = parse_names(args.classes, flag="--classes") if args.classes is not None else None
    evaluate_checkpoint(
        args.checkpoint,
        data=args.data,
        split=args.split,
        images=args.images,
        ann_file=args.ann,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        results=args.results,
        overwrite=args.overwrite,
        classes=classes,
    )
    return 0


def _at_least(low: int):
    """An argparse type: an integer >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse
