"""`boxer convert --from official`: the official BoxeR-2D weights as a boxer checkpoint directory."""

from __future__ import annotations

import argparse

from boxer.cli.help import DefaultsRawDescriptionHelpFormatter

DESCRIPTION = """\
Convert weights of the official BoxeR code (github.com/kienduynguyen/BoxeR) into a boxer checkpoint
directory that `boxer eval|predict --checkpoint DIR` load like any other.

Official file forms (both read with torch.load(weights_only=True): tensors and plain containers only):
  *.ckpt        periodic checkpoint: a dict whose 'model' entry is the state dict (also 'optimizer',
                'config', ...; its config gives the residual mode)
  *_final.pth   the state dict itself; keys may start with 'module.' (saved from the DDP wrapper)

The keys tell the architecture: masks (detector.mask_embed.* / 196-row kernel_indices), the class
count (detector.class_embed rows) and the backbone (6 blocks in layer3: R50, 23: R101). A file whose
keys or shapes do not fit the boxer model is refused with one line naming the key.

Example (the released BoxeR-R101-5x (v2), box AP 52.3 / mask AP 44.8; docs/official_weights.md):
  boxer convert --from official boxer2d_R_101_5x_lsj_resmode_v2.pth --out weights/boxer2d_r101_mask
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert official BoxeR-2D weights (.ckpt / .pth) into a boxer checkpoint",
        description=DESCRIPTION,
        formatter_class=DefaultsRawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="the official .ckpt or .pth file")
    p.add_argument("--from", dest="source", required=True, choices=["official"], help="where FILE comes from")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint directory to write")
    p.add_argument(
        "--model", help="boxer variant (default: the one the keys describe, e.g. boxer2d_r101_mask)"
    )
    p.add_argument(
        "--residual-mode",
        choices=["v1", "v2"],
        help="mask-feature residual of a mask model (default: the .ckpt's config, else v2, as released)",
    )
    p.add_argument(
        "--classes",
        choices=["coco80", "raw"],
        default="coco80",
        help="coco80 (default): keep the class rows of the 80 COCO category ids; raw: keep every row "
        "(label = the official class index)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace weights / config already in DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.models.boxer2d.convert import convert_official

    config = convert_official(
        args.file,
        args.out,
        model=args.model,
        residual_mode=args.residual_mode,
        classes=args.classes,
        overwrite=args.overwrite,
    )
    mode = config["converted_from"]["residual_mode"]
    print(
        f"wrote {args.out}: {config['model']}, {config['num_classes']} classes, residual mode {mode}; "
        f"use it with `boxer eval|predict --checkpoint {args.out}`"
    )
    return 0
