"""The help formatter of every `boxer` parser: each flag's help ends with its default.

A flag whose help already says its default (the word "default"), a required flag, a switch
(`store_true`) and a flag whose default is None (its help says what happens then) are left as written.
"""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """`argparse.ArgumentDefaultsHelpFormatter` without the noise: "(default: X)" only where it informs."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.required or action.default in (None, argparse.SUPPRESS):
            return text
        if isinstance(action.default, bool) or action.nargs == 0:
            return text  # switches: off unless given
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class DefaultsRawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """The same, keeping the description's own line breaks."""


class BoxerArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; sub-command parsers inherit the class."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def config_flag_adder(parser: argparse.ArgumentParser, defaults: object):
    """`add(name, help=..., **kw)`: a flag for the config key `name` (--batch-size: batch_size) whose
    value None means "not given", so a preset or `--set` may set the key; its help names the default."""

    def add(name: str, *, help: str, **kw) -> None:
        value = getattr(defaults, name[2:].replace("-", "_"))
        parser.add_argument(name, help=f"{help} (default {value})", **kw)

    return add
