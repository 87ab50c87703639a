"""The command-line vocabulary every command shares.

* ``--output``: where a command writes; an existing output is refused unless ``--overwrite``;
* ``-o/--option KEY=VALUE`` (repeatable): a reader option for every command that reads a
  source (values parsed as JSON when they can be: numbers, lists, true/false);
* ``--quiet``: no progress bars.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


class UsageError(ValueError):
    """A command-line value is malformed; the message names the option."""


def add_reader_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                        help="reader option, e.g. -o cloud_folder=SCL -o patch_size=5 (repeat)")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def reader_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``; values parsed as JSON when possible."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"-o/--option expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
