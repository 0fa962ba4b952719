"""`boxer data`: generate FashionScenes, check a COCO dataset, summarise annotation files."""

from __future__ import annotations

import argparse
import time

from boxer.data.scenes import DEFAULT_TRAIN, DEFAULT_VAL


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="generate, check and summarise datasets")
    data_sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    gen = data_sub.add_parser("fashion-scenes", help="write the FashionScenes benchmark (COCO format)")
    gen.add_argument("--out", required=True, help="dataset folder (new, empty, or a previous FashionScenes)")
    gen.add_argument(
        "--train", type=int, default=DEFAULT_TRAIN, help=f"train scenes (default {DEFAULT_TRAIN})"
    )
    gen.add_argument("--val", type=int, default=DEFAULT_VAL, help=f"val scenes (default {DEFAULT_VAL})")
    gen.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    gen.add_argument("--max-objects", type=int, default=6, help="most items per scene (default 6)")
    gen.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    gen.add_argument(
        "--fashion-root",
        default=None,
        help=(
            "folder with the Fashion-MNIST IDX files (default: "
            "$BOXER_FASHION_MNIST, then the usual search, docs/data.md)"
        ),
    )
    gen.add_argument("--workers", type=int, default=None, help="render processes (default: up to 4)")
    gen.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out folder of other content"
    )
    gen.add_argument(
        "--exclude-classes",
        default="",
        metavar="NAMES",
        help="comma-separated classes never drawn nor listed, e.g. 'Bag,Ankle boot' (held-out classes)",
    )
    gen.set_defaults(func=run_fashion_scenes)

    check = data_sub.add_parser("check", help="check a COCO JSON and its images (exit 1 on errors)")
    check.add_argument(
        "--images", default=None, help="image folder (default: none, the JSON only is checked)"
    )
    check.add_argument("--annotations", required=True, help="COCO annotation JSON")
    check.add_argument("--all-warnings", action="store_true", help="list every warning, not the first 20")
    check.set_defaults(func=run_check)

    summary = data_sub.add_parser("summary", help="instances per class and COCO size range")
    summary.add_argument("--annotations", required=True, nargs="+", help="COCO annotation JSON(s)")
    summary.set_defaults(func=run_summary)


def run_fashion_scenes(args: argparse.Namespace) -> int:
    from boxer.data.fashion_scenes import generate_fashion_scenes
    from boxer.data.summary import format_summary, summarize_coco

    start = time.perf_counter()
    written = generate_fashion_scenes(
        args.out,
        train=args.train,
        val=args.val,
        size=args.size,
        max_objects=args.max_objects,
        seed=args.seed,
        fashion_root=args.fashion_root,
        workers=args.workers,
        overwrite=args.overwrite,
        exclude_classes=args.exclude_classes,
    )
    print(f"FashionScenes written to {args.out} in {time.perf_counter() - start:.1f}s")
    for split, path in written.items():
        print()
        print(format_summary(summarize_coco(path, name=f"{split} ({path})")))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from boxer.data.doctor import check_dataset

    report = check_dataset(args.images, args.annotations)
    print(report.format(max_warnings=None if args.all_warnings else 20))
    return 0 if report.ok else 1


def run_summary(args: argparse.Namespace) -> int:
    from boxer.data.summary import format_summary, summarize_coco

    for i, path in enumerate(args.annotations):
        if i:
            print()
        print(format_summary(summarize_coco(path)))
    return 0
