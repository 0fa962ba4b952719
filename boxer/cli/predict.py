"""`boxer predict`: run a trained detector on images; annotated PNGs and a COCO results JSON."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="detect objects in images with a trained checkpoint",
        description="Writes OUT/<image>.png with boxes, class names, scores (and masks), "
        "OUT/results.json (COCO results, RLE segmentations for mask models) and OUT/images.json "
        "(the image ids used: the file stem when numeric, else sequential).",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint dir (RUN/last, RUN/best)")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--score", type=float, default=0.3, help="min score to keep (default 0.3)")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.engine.runner import predict_images

    out = predict_images(
        args.checkpoint,
        args.inputs,
        args.out,
        score=args.score,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"{len(out['images'])} annotated images and {out['detections']} detections written to {args.out}")
    print(f"COCO results: {out['results']} (image ids in {args.out}/images.json)")
    return 0
