"""`boxer predict`: run a trained detector on images; annotated PNGs and a COCO results JSON."""

from __future__ import annotations

import argparse


def score_arg(text: str) -> float | str:
    """`--score`: "auto" or a number in [0, 1]."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="detect objects in images with a trained checkpoint",
        description="Writes OUT/<image>.png with boxes, class names, scores (and masks), "
        "OUT/results.json (COCO results with score >= the threshold, RLE segmentations for mask "
        "models) and OUT/images.json (the image ids used: the file stem when numeric, else "
        "sequential). Pictures leave out near-duplicate boxes (IoU >= 0.7 with a better one); the "
        "results JSON keeps them. Input images are never overwritten: --out may not be, or lie inside, "
        "an input folder, and existing files not written by boxer predict need --overwrite. "
        "A video (needs the extra boxer[video]) gives OUT/<stem>.mp4, its frames drawn the same way, "
        "and OUT/<stem>.jsonl, one JSON line of detections per frame; nothing is written when a video "
        "cannot be opened or fails to decode.",
    )
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="checkpoint dir (RUN/last, RUN/best); default: none, then --onnx is required",
    )
    p.add_argument(
        "--onnx",
        metavar="FILE",
        help="an ONNX file of `boxer export` instead of --checkpoint (onnxruntime; default: none)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE_OR_DIR_OR_VIDEO",
        help="image files or folders of images; or video files (.mp4, .mov, .avi, .mkv, .webm, ...): "
        "OUT/<stem>.mp4 annotated and OUT/<stem>.jsonl, one line of detections per frame",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--score",
        type=score_arg,
        default=0.3,
        metavar="FLOAT|auto",
        help="min score to keep (default 0.3); 'auto' picks the threshold with the best F1 "
        "(IoU >= 0.5, class-aware) on the run's own training images (its config.json names them)",
    )
    p.add_argument(
        "--score-images",
        type=positive_int,
        default=64,
        metavar="N",
        help="training images for --score auto (default 64)",
    )
    p.add_argument(
        "--top",
        type=positive_int,
        metavar="N",
        help="draw at most N detections per image (default: all above --score)",
    )
    p.add_argument(
        "--gt",
        metavar="ANNOTATIONS.json",
        help="COCO annotations of the images (matched by file name): pictures show the ground truth "
        "on the left of the predictions (default: none, predictions only)",
    )
    p.add_argument(
        "--grid",
        metavar="FILE.png",
        help="also write up to 6 images as one picture (GT | prediction pairs; default: not written)",
    )
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per forward pass (default 1)")
    p.add_argument(
        "--every", type=positive_int, default=1, metavar="N", help="videos: every Nth frame (default 1)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files in --out (or --grid) that boxer predict did not write; files an "
        "earlier boxer predict wrote there are replaced anyway, input images never",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (default auto)")
    p.add_argument(
        "--text",
        metavar="PROMPTS",
        help="open vocabulary: detect these comma-separated names or phrases instead of the trained "
        "classes, labelled with the prompts (a checkpoint with a text head, class_head=text; "
        "docs/open_vocabulary.md; default: the trained classes)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from boxer.engine.predict import check_outputs, summary_line
    from boxer.engine.runner import predict_images
    from boxer.engine.video import video_inputs
    from boxer.errors import BoxerError

    if bool(args.checkpoint) == bool(args.onnx):
        raise BoxerError("give one of --checkpoint and --onnx")
    videos = video_inputs(args.inputs)
    if videos and args.onnx:
        raise BoxerError(f"--onnx: {videos[0]}: videos need --checkpoint")
    if videos and args.text is None:
        from boxer.cli.predict_video import run_video

        return run_video(args, videos)
    text = _check_text(args, videos) if args.text is not None else None
    if args.grid and not args.grid.lower().endswith(".png"):
        raise BoxerError(f"--grid: {args.grid} is not a .png file name")
    grid = Path(args.grid) if args.grid else None
    check_outputs(args.inputs, Path(args.out), grid=grid, overwrite=args.overwrite)
    if args.onnx:
        from boxer.engine.onnx_predict import predict_images_onnx

        predict_images = predict_images_onnx  # same keywords; the forward runs under onnxruntime
    out = predict_images(
        args.onnx or args.checkpoint,
        args.inputs,
        args.out,
        score=args.score,
        score_images=args.score_images,
        top=args.top,
        gt=args.gt,
        grid=args.grid,
        batch_size=args.batch_size,
        device=args.device,
        **({"text": text} if text else {}),
    )
    hint = (
        "the threshold comes from training images; a lower --score FLOAT shows more"
        if args.score == "auto"
        else "try --score auto or a lower --score"
    )
    for name, note in out["empty"]:
        print(f"{name}: no detection drawn: {note}; {hint}")
    count = len(out["images"])
    print(summary_line(count, out["detections"], score=out["score"], highest=out["highest"], out=args.out,
                       auto=args.score == "auto"))  # fmt: skip
    if out["grid"]:
        print(f"grid of {'ground truth | predictions' if args.gt else 'predictions'}: {out['grid']}")
    print(f"COCO results: {out['results']} (image ids in {args.out}/images.json)")
    return 0


def _check_text(args: argparse.Namespace, videos: list) -> list[str]:
    """The --text prompts; refuses what they cannot go with (before any work)."""
    from boxer.engine.vocabulary import parse_names
    from boxer.errors import BoxerError

    names = parse_names(args.text, flag="--text")
    for bad, why in (
        (args.onnx, "--onnx (an exported graph has fixed classes)"),
        (videos, "videos"),
        (args.score == "auto", "--score auto (its threshold is picked on the trained classes)"),
        (args.gt, "--gt (ground truth names the trained classes)"),
    ):
        if bad:
            raise BoxerError(f"--text: not with {why}")
    return names
