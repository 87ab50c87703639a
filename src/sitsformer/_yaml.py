"""The one YAML reading of the package (config files, ``section.key=value`` overrides and
``-o KEY=VALUE`` reader options): safe YAML without timestamps, so ``2006-01-01`` stays the string
it was typed as (configs are stored in checkpoints, which are read back with
``weights_only=True``). Light on purpose: importing it imports only PyYAML."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["load_yaml"]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without the timestamp resolver."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_yaml(text: str) -> Any:
    """``text`` read as safe YAML, dates left as strings."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
