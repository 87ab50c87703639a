"""``sitsformer <command>``: the command-line tool.

Each command lives in its own module of this package and exposes ``register(subparsers)``,
which adds an ``argparse`` sub-parser whose ``func`` default runs the command and returns an
exit code. Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

# Command modules, in the order ``--help`` lists them. A module that is not present yet is
# skipped, so commands can be added one module at a time.
COMMAND_MODULES = ["demo", "data", "train", "evaluate", "predict", "smooth", "uncertainty",
                   "sample_design", "assess", "report", "pretrain", "finetune", "sweep", "benchmark",
                   "export", "config"]


def build_parser() -> argparse.ArgumentParser:
    from sitsformer import __version__

    parser = argparse.ArgumentParser(
        prog="sitsformer",
        description="Train, pre-train, fine-tune, tune, evaluate and map with SITS-Former "
        "models on satellite image time series.",
    )
    parser.add_argument("--version", action="version", version=f"sitsformer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"sitsformer.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"sitsformer.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; for the commands that take ``KEY=VALUE`` overrides (they set
    ``intermixed_overrides``), overrides written after options (``--resume X train.epochs=4``,
    ``--json optim.lr=0.1``) join the ones before, in order. argparse's own
    ``parse_intermixed_args`` refuses parsers with sub-commands, hence this."""
    args, extras = parser.parse_known_args(argv)
    if extras and getattr(args, "intermixed_overrides", False):
        bad = [e for e in extras if e.startswith("-") or "=" not in e]
        if not bad:
            args.overrides = [*args.overrides, *extras]
            extras = []
        else:
            extras = bad
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk or a read-only folder a command did not catch itself
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        where = f"cannot write {err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}; the files already written are intact",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
