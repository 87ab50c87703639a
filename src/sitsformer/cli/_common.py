"""The command-line vocabulary every command shares.

* ``--output``: where a command writes; an existing output is refused unless ``--overwrite``;
* ``-o/--option KEY=VALUE`` (repeatable): a reader option for every command that reads a
  source; the value is YAML, as in a config file and a ``section.key=value`` override
  (``5``, ``1e4``, ``true``, ``[B2, B3]``, ``{1: wheat, 2: maize}``; a date stays a string),
  and a value YAML cannot read is refused naming the option;
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
                        help="reader option, the value read as YAML, e.g. -o cloud_folder=SCL "
                        "-o patch_size=5 -o 'class_names={1: wheat, 2: maize}' (repeat)")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def reader_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``, each value read as YAML (module doc; JSON
    numbers such as ``1e4`` are numbers; an empty value is None).

    Raises:
        UsageError: a pair without ``=``, an empty key, or a value that is not valid YAML
            (naming the option and the value).
    """
    import yaml

    from sitsformer._yaml import load_yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"-o/--option expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise UsageError(f"-o/--option expects KEY=VALUE, got an empty key in {pair!r}")
        try:
            out[key] = json.loads(value)  # JSON numbers YAML 1.1 reads as strings (1e4)
            continue
        except json.JSONDecodeError:
            pass
        try:
            out[key] = load_yaml(value) if value.strip() else None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            reason = (f"{err.problem} at character {mark.column + 1}"  # type: ignore[attr-defined]
                      if getattr(err, "problem", None) and mark else " ".join(str(err).split()))
            raise UsageError(f"-o {key}={value}: the value is not valid YAML ({reason}); quote "
                             f"it for a plain string, e.g. -o '{key}=\"{value}\"'") from None
    return out
