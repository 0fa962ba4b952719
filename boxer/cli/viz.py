"""`boxer viz`: pictures of what the models attend to (`attention`) and how training went.

Each subcommand parses its flags and calls one library function of `boxer.viz`.
"""

from __future__ import annotations

import argparse

from boxer.cli.predict import positive_int


def pixel_arg(text: str) -> tuple[float, float] | str:
    """`--pixel x,y`: a point of the image file, in pixels; or `centre`: the best detection's centre."""
    if text in ("centre", "center"):
        return "centre"
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y (pixels), e.g. 120,80; got {text!r}") from None
    if x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative pixels, got {text!r}")
    return x, y


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("viz", help="figures: box-attention windows, run reports",
                       description="Figures (PNG) and their data (NPZ / JSON).")  # fmt: skip
    viz = p.add_subparsers(dest="viz_command", metavar="FIGURE", required=True)
    _add_attention(viz)
    _add_run(viz)
    _add_mixer(viz)
    _add_spectrum(viz)


def _add_attention(viz) -> None:
    p = viz.add_parser(
        "attention",
        help="BoxeR-2D box-attention: windows, sampling points and weights per layer and level",
        description="Per image and top detection, OUT/<stem>_det<k>.png: a row per decoder layer, a column "
        "per feature level; each panel shows the detection (green), the query's reference window (white "
        "dashed), each head's transformed window and its sampling points (opacity = attention weight); "
        "mask models add the predicted mask. With --pixel, OUT/<stem>_encoder_level<l>.png: the same for "
        "the encoder token under the pixel on level l. OUT/<stem>_attention.npz holds every number drawn "
        "(pixels of the image file), OUT/attention.json indexes the figures, detections and arrays.",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a BoxeR-2D checkpoint (RUN/best)")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--detections", type=positive_int, default=3, metavar="N",
                   help="top-N detections by score drawn per image (default 3)")  # fmt: skip
    p.add_argument("--layers", type=int, nargs="+", metavar="I",
                   help="layers drawn (default all; -1 = the last)")  # fmt: skip
    p.add_argument(
        "--pixel",
        type=pixel_arg,
        metavar="X,Y",
        help="also draw the encoder tokens under this pixel (default: none)",
    )
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="device (default cpu)")
    p.set_defaults(func=run_attention)


def run_attention(args: argparse.Namespace) -> int:
    from boxer.viz.attention_report import write_attention

    index = write_attention(args.checkpoint, args.inputs, args.out, detections=args.detections,
                            layers=args.layers, pixel=args.pixel, device=args.device)  # fmt: skip
    for entry in index["images"]:
        print(f"{entry['image']}: {len(entry['figures'])} figure(s), data {entry['data']}")
    print(f"index: {args.out}/attention.json")
    return 0


def _add_run(viz) -> None:
    p = viz.add_parser(
        "run",
        help="run report: curves, per-class AP, precision-recall, confusion matrix (several runs overlaid)",
        description="OUT/curves.png: total loss, the last layer's loss terms, learning rate and AP against "
        "iterations and wall-clock minutes (RUN/metrics.jsonl and RUN/tb); OUT/losses.png: every loss term; "
        "unless --no-eval, the run's best (else last) checkpoint predicts its val split: "
        "OUT/per_class_ap.png, OUT/pr_curves.png (IoU 0.5) and OUT/confusion_<run>.png "
        "(IoU >= 0.5, score >= --score). "
        "OUT/report.json holds every number drawn, OUT/results_<run>.json the COCO results.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (several: overlaid)")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN/report for one run)")
    p.add_argument("--no-eval", action="store_true", help="curves only: no prediction on val")
    p.add_argument("--score", type=float, default=0.3, help="confusion matrix: min score (default 0.3)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="device (default cpu)")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from boxer.errors import BoxerError
    from boxer.viz.run_report import write_run_report

    if not args.out and len(args.runs) > 1:
        raise BoxerError("--out: needed with several runs")
    out = args.out or str(Path(args.runs[0]) / "report")
    written = write_run_report(
        args.runs, out, evaluate=not args.no_eval, score=args.score, device=args.device
    )
    for path in written["figures"]:
        print(f"figure: {path}")
    print(f"data: {', '.join(written['data'])}")
    return 0


def fraction_pair(text: str) -> tuple[float, float]:
    """`--query y,x`: the query position as fractions of the map's height and width, in [0, 1]."""
    try:
        y, x = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected y,x fractions in [0, 1], e.g. 0.5,0.5; got {text!r}"
        ) from None
    if not (0 <= y <= 1 and 0 <= x <= 1):
        raise argparse.ArgumentTypeError(f"expected fractions in [0, 1], got {text!r}")
    return min(y, 0.999), min(x, 0.999)


def _add_mixer(viz) -> None:
    from boxer.viz import MIXER_ZOO as ZOO

    p = viz.add_parser(
        "mixer",
        help="attention maps of the mixer zoo (fresh mixers) or of a trained classifier (+ ViT rollout)",
        description="Without --checkpoint: OUT/mixers.png, a row per mixer (--mixers), each head's attention "
        "map of the query over a feature map made from IMAGE (or a synthetic disc), freshly built mixers "
        "(seed 0); shifted windows show the shifted regions' borders (dashed). With --checkpoint (a "
        "`boxer train-cls` run): OUT/<stem>_layers.png, every attention layer's map of the query (heads "
        "averaged) over the image, and for global-attention models (ViT) OUT/<stem>_rollout.png, the "
        "attention rollout. The maps are also written as NPZ.",
    )
    p.add_argument(
        "image",
        nargs="?",
        metavar="IMAGE",
        help="the image (required with --checkpoint; default: a synthetic disc)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--mixers", default=",".join(ZOO), help=f"comma-separated mixers (default {','.join(ZOO)})"
    )
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="a trained classifier checkpoint (RUN/best; default: freshly built mixers)",
    )
    p.add_argument("--query", type=fraction_pair, default=(0.5, 0.5), metavar="Y,X",
                   help="query position as fractions of the map (default 0.5,0.5)")  # fmt: skip
    p.add_argument("--size", type=positive_int, default=14, help="zoo: side of the feature map (default 14)")
    p.set_defaults(func=run_mixer)


def run_mixer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from boxer.errors import BoxerError
    from boxer.viz.mixer_report import classifier_maps, mixer_zoo

    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.checkpoint:
        if not args.image:
            raise BoxerError("IMAGE: needed with --checkpoint")
        written = classifier_maps(args.checkpoint, args.image, args.out, query=args.query)
    else:
        names = [n.strip() for n in args.mixers.split(",") if n.strip()]
        written = mixer_zoo(names, args.out, image=args.image, size=args.size, query=args.query)
    for path in written["figures"]:
        print(f"figure: {path}")
    print(f"data: {', '.join(written['data'])}")
    return 0


def _add_spectrum(viz) -> None:
    p = viz.add_parser(
        "spectrum",
        help="amplitude spectra of feature maps and attention redundancy of classifiers (docs/viz.md)",
        description="OUT/spectrum.png: per model, the relative log amplitude of every block's feature map "
        "against frequency (0 .. pi) and the high-frequency share per block; OUT/similarity.png: the mean "
        "cosine similarity between different queries' attention per attention layer; OUT/spectrum.json. "
        "Inputs: the first N Fashion-MNIST test images.",
    )
    p.add_argument("--models", required=True, metavar="M[,M...]",
                   help="comma-separated NAME=CKPT (trained), CKPT, or NAME (untrained, seed 0), "
                   "e.g. vit_fm=runs/vit/best,resnet_fm=runs/resnet/best,swin_fm")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--images", type=positive_int, default=32, help="test images averaged (default 32)")
    p.add_argument("--data-root", metavar="DIR", help="Fashion-MNIST folder (default: the usual places)")
    p.set_defaults(func=run_spectrum)


def run_spectrum(args: argparse.Namespace) -> int:
    from boxer.viz.spectrum_report import write_spectrum

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    written = write_spectrum(models, args.out, images=args.images, root=args.data_root)
    for path in written["figures"]:
        print(f"figure: {path}")
    print(f"data: {', '.join(written['data'])}")
    return 0
