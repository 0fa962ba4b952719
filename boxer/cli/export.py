"""`boxer export`: a checkpoint as an ONNX file or a torch.export program (.pt2), post-processing included."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX or torch.export (.pt2)",
        description="Traces the model through the pure-PyTorch box-attention (never the Triton kernel) "
        "with torch.export; --format onnx converts that program to ONNX (opset 18, GridSample), "
        "--format torch-export saves it (torch.export.save). Detectors take images float32[B, 3, H, W] "
        "(resized and ImageNet-normalised) and orig_sizes int64[B, 2] (h0, w0) and return boxes (xyxy, "
        "original pixels), scores, labels (and masks at the input size); batch, H and W are dynamic. "
        "Classifiers take images[B, 3, S, S] (dynamic batch, fixed S) and return logits. The class "
        "names and the preprocessing are stored in the file. ONNX needs the extra: "
        "pip install 'boxer[export]'.",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint dir (RUN/last, RUN/best)")
    p.add_argument("--format", required=True, choices=["onnx", "torch-export"], help="output format")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write (.onnx or .pt2)")
    p.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help="side of the example image traced (default: the checkpoint's eval size; the detectors' size "
        "stays dynamic, a classifier's is fixed to it)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from boxer.engine.export import export_checkpoint
    from boxer.errors import BoxerError

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise BoxerError(f"--out: {out} exists; pass --overwrite to replace it")
    meta = export_checkpoint(args.checkpoint, args.format, out, image_size=args.image_size)
    dynamic = ", ".join(meta["dynamic"])
    print(f"{meta['model']} ({meta['kind']}) exported to {out} ({args.format}; dynamic: {dynamic}; "
          f"outputs: {', '.join(meta['outputs'])})")  # fmt: skip
    return 0
