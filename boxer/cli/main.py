"""Entry point of the `boxer` console script: dispatches to one module per subcommand.

Each module in COMMANDS defines `add_parser(subparsers)`, which registers its parser and sets
`func=run` on it. Commands stay thin and call library functions.

Only the module of the command being run is imported: `boxer --help` lists the commands from
COMMANDS (and never imports torch), `boxer train ...` imports `boxer.cli.train` alone. A test checks
that each summary below is the one its module registers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable, Sequence

from boxer import __version__
from boxer.cli.help import BoxerArgumentParser
from boxer.errors import BoxerError

# command -> (module that registers it, one-line summary). Explicit: a module here that fails to
# import is a bug, not something to skip. The order is the order of `boxer --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("boxer.cli.data", "generate, check and summarise datasets"),
    "pretrain-backbone": (
        "boxer.cli.pretrain",
        "pretrain a detection backbone on Fashion-MNIST items (the FashionScenes analogue of ImageNet)",
    ),
    "train": ("boxer.cli.train", "train a detector (BoxeR-2D, Mask R-CNN, ...) on a COCO-format dataset"),
    "eval": ("boxer.cli.eval", "evaluate a trained checkpoint with the COCO protocol"),
    "predict": ("boxer.cli.predict", "detect objects in images with a trained checkpoint"),
    "export": ("boxer.cli.export", "export a checkpoint to ONNX or torch.export (.pt2)"),
    "convert": (
        "boxer.cli.convert",
        "convert official BoxeR-2D weights (.ckpt / .pth) into a boxer checkpoint",
    ),
    "models": ("boxer.cli.models", "list registered models"),
    "train-cls": (
        "boxer.cli.cls",
        "train an image classifier (ResNet, BoTNet, hybrid mixers, ViT, Swin) on Fashion-MNIST",
    ),
    "eval-cls": ("boxer.cli.cls", "top-1/top-5 of a classification checkpoint"),
    "bench": ("boxer.cli.bench", "efficiency table of models, backbones and token mixers"),
    "viz": ("boxer.cli.viz", "figures: box-attention windows, run reports"),
}


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv` (the first word that is not a top-level option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The `boxer` parser with full sub-parsers for `commands` (None = all), summaries for the rest."""
    parser = BoxerArgumentParser(
        prog="boxer", description="Attention-based vision: train, evaluate and benchmark BoxeR and friends."
    )
    parser.add_argument("--version", action="version", version=f"boxer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = {COMMANDS[name][0] for name in (COMMANDS if commands is None else commands)}
    for name, (module, summary) in COMMANDS.items():
        if name in sub.choices:
            continue  # registered with an earlier command of the same module
        if module in wanted:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console script: maybe restart with the tuned CPU allocator, before torch loads
        from boxer.engine.allocator import reexec_if_needed

        reexec_if_needed(sys.argv[1:])
    words = sys.argv[1:] if argv is None else [str(a) for a in argv]
    command = command_of(words)
    parser = build_parser([command] if command in COMMANDS else [])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BoxerError as err:  # exit code 130: interrupted (Ctrl-C), not an error of the user
        kind = "" if err.exit_code == 130 else "error: "
        print(f"boxer {args.command}: {kind}{err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"boxer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
