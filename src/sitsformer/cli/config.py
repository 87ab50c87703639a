"""``sitsformer config list`` / ``sitsformer config show NAME``: the configs shipped inside
the package.

``show`` prints the file as it is (comments included), so ``sitsformer config show demo >
my.yaml`` gives a copy to edit. Any ``--config`` option accepts these names directly.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _describe(path: Any) -> str:
    """The first comment line of a config file (its one-line description)."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def run_list(args: argparse.Namespace) -> int:
    from sitsformer.configs import shipped_configs

    shipped = shipped_configs()
    width = max(len(n) for n in shipped)
    for name, path in shipped.items():
        kind = "sweep" if name.startswith("sweeps/") and "base" not in name else "train"
        print(f"{name:<{width}}  {kind:<5}  {_describe(path)}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from sitsformer.configs import UnknownConfigError, resolve_config, shipped_configs

    try:
        name = str(args.name).removesuffix(".yaml")
        if name not in shipped_configs():  # show only shipped names, never arbitrary files
            raise UnknownConfigError(
                f"no shipped config named {args.name!r}; shipped: "
                f"{', '.join(shipped_configs())}")
        path = resolve_config(name)
    except UnknownConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(path.read_text())
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "config", help="list or print the configs shipped with sitsformer",
        description="Configs shipped inside the package. Every --config option accepts their "
        "names (e.g. `sitsformer train --config demo`); `show NAME > my.yaml` copies one.")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION")
    lst = sub.add_parser("list", help="list the shipped config names")
    lst.set_defaults(func=run_list)
    show = sub.add_parser("show", help="print a shipped config (YAML)")
    show.add_argument("name", help="a shipped config name, e.g. demo or sweeps/tutorial")
    show.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
