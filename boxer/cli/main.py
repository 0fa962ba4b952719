"""Entry point of the `boxer` console script: dispatches to one module per subcommand.

Each module in COMMANDS defines `add_parser(subparsers)`, which registers its parser and sets
`func=run` on it. Commands stay thin and call library functions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from boxer import __version__
from boxer.errors import BoxerError

# Explicit list: a module here that fails to import is a bug, not something to skip.
COMMANDS = [
    "boxer.cli.data",
    "boxer.cli.pretrain",
    "boxer.cli.train",
    "boxer.cli.eval",
    "boxer.cli.predict",
    "boxer.cli.export",
    "boxer.cli.convert",
    "boxer.cli.models",
    "boxer.cli.cls",
    "boxer.cli.bench",
    "boxer.cli.viz",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boxer", description="Attention-based vision: train, evaluate and benchmark BoxeR and friends."
    )
    parser.add_argument("--version", action="version", version=f"boxer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console script: maybe restart with the tuned CPU allocator, before torch loads
        from boxer.engine.allocator import reexec_if_needed

        reexec_if_needed(sys.argv[1:])
    parser = build_parser()
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
