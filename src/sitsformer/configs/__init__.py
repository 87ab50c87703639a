"""Named configs shipped inside the package.

Every ``--config`` option of the command-line tool takes either a file path or the name of one
of these (``demo``, ``victoria_pixel``, ``sweeps/demo`` ...; ``NAME.yaml`` works too):
``sitsformer config list`` lists them, ``sitsformer config show NAME > my.yaml`` copies one
out to edit. A path to an existing file always wins over a shipped name.

The sweep command also finds a sweep by its short name (``sitsformer sweep --config demo`` is
``sweeps/demo``), since a training config is no sweep file.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent

# What each kind of command reads, and the folder (below CONFIG_DIR) it looks in first.
KINDS = {"train": "", "sweep": "sweeps"}


class UnknownConfigError(ValueError):
    """Neither an existing file nor a shipped config name."""


def shipped_configs() -> dict[str, Path]:
    """``{name: path}`` of every shipped config, names like ``demo`` or ``sweeps/tutorial``."""
    return {p.relative_to(CONFIG_DIR).with_suffix("").as_posix(): p
            for p in sorted(CONFIG_DIR.rglob("*.yaml"))}


def is_shipped(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is one of the shipped config files (then relative output folders in it
    are taken from the current directory, never from inside the installed package)."""
    try:
        Path(path).resolve().relative_to(CONFIG_DIR)
    except ValueError:
        return False
    return True


def resolve_config(name_or_path: str | os.PathLike[str], kind: str = "train") -> Path:
    """The file a ``--config`` value names.

    Args:
        name_or_path: a path to a YAML file, or a shipped name (``demo``, ``demo.yaml``,
            ``sweeps/demo``).
        kind: ``"train"`` or ``"sweep"``: a sweep command looks for ``sweeps/NAME`` first.

    Raises:
        UnknownConfigError: neither an existing file nor a shipped name; the message lists the
            shipped names.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, found {kind!r}")
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml").removesuffix(".yml")
    shipped = shipped_configs()
    candidates = [f"{KINDS[kind]}/{name}", name] if KINDS[kind] else [name]
    for candidate in candidates:
        if candidate in shipped:
            return shipped[candidate]
    raise UnknownConfigError(
        f"config {str(name_or_path)!r}: no such file, and not a shipped config name; "
        f"shipped: {', '.join(shipped)} (see `sitsformer config list`)")


__all__ = ["CONFIG_DIR", "UnknownConfigError", "is_shipped", "resolve_config",
           "shipped_configs"]
