"""`boxer models`: list the registered models."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models", description="List registered models.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'boxer2d*'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.models import MODELS

    names = MODELS.names(args.pattern)
    width = max((len(n) for n in names), default=0)
    for name in names:
        doc = (MODELS.get(name).__doc__ or "").strip().splitlines()
        print(f"{name:<{width}}  {doc[0] if doc else ''}".rstrip())
    if not names:
        print(f"no registered model matches {args.pattern!r}")
    return 0
