"""Registry of named model variants (``@register_model``)."""

from __future__ import annotations

from typing import Any, Callable

_MODEL_DEFAULTS: dict[str, Callable[[], dict[str, Any]]] = {}


def register_model(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Register a function returning a variant's default configuration, under its name."""
    _MODEL_DEFAULTS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered variants, sorted."""
    return sorted(_MODEL_DEFAULTS)


def variant_config(name: str) -> dict[str, Any]:
    """Default configuration of a registered variant."""
    if name not in _MODEL_DEFAULTS:
        raise KeyError(f"unknown model variant {name!r}; registered: {', '.join(list_models())}")
    return dict(_MODEL_DEFAULTS[name]())
