"""``create_optimizer``: AdamW / Adam / SGD with no-decay groups and layer-wise LR decay.

Given ``model.parameters()`` (an iterator) the optimizer treats every parameter alike, as
``torch.optim`` would. Given the model itself, parameters are split into groups:

* no weight decay for 1-D parameters (norm weights, biases), embedding tables and every name in
  ``model.no_weight_decay()``;
* with ``layer_decay < 1`` and a model exposing ``layer_id(name)`` (0 = embeddings ...
  ``num_layers + 1`` = head), the learning rate of depth ``i`` is scaled by
  ``layer_decay ** (max_depth - i)``: the head learns at ``lr``, the embeddings slowest
  (the usual recipe for fine-tuning a pre-trained encoder).

Every group carries ``lr_scale`` so schedulers keep the ratios.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("adamw", "adam", "sgd")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None,
                 extra_no_decay: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Split a model's trainable parameters into decay / no-decay (and per-depth) groups.

    Returns:
        A list of ``{"params", "weight_decay", "lr_scale", "group_name"}`` dicts; empty groups
        are left out.
    """
    base = _unwrap(model)
    skip = set(extra_no_decay)
    if hasattr(base, "no_weight_decay"):
        skip |= set(base.no_weight_decay())
    embedding_params = {id(m.weight) for m in base.modules() if isinstance(m, nn.Embedding)}
    use_layers = layer_decay is not None and layer_decay != 1.0
    if use_layers and not hasattr(base, "layer_id"):
        raise ValueError(
            f"layer_decay={layer_decay} needs a model with layer_id(name); "
            f"{type(base).__name__} has none"
        )
    max_depth = 0
    if use_layers:
        max_depth = max(base.layer_id(n) for n, _ in base.named_parameters())
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for name, p in base.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name in skip or id(p) in embedding_params or name.endswith(".bias")
        depth = base.layer_id(name) if use_layers else 0
        key = ("no_decay" if no_decay else "decay", depth)
        if key not in groups:
            scale = float(layer_decay ** (max_depth - depth)) if use_layers else 1.0
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay,
                           "lr_scale": scale, "group_name": f"{key[0]}_layer{depth}"}
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups, key=lambda k: (k[1], k[0]))]


def create_optimizer(params: nn.Module | Iterable[Any], optimizer_type: str = "adamw",
                     lr: float = 1e-4, weight_decay: float = 1e-2,
                     betas: tuple[float, float] = (0.9, 0.999), momentum: float = 0.9,
                     eps: float = 1e-8, nesterov: bool = True, layer_decay: float | None = None,
                     **kwargs: Any) -> torch.optim.Optimizer:
    """Build an optimizer.

    Args:
        params: ``model.parameters()`` (all parameters decayed alike) or the model itself
            (norms, biases, embeddings and ``model.no_weight_decay()`` names get no decay;
            enables ``layer_decay``).
        optimizer_type: ``"adamw"``, ``"adam"`` or ``"sgd"``.
        lr: base learning rate (the head's, with layer decay).
        weight_decay: decoupled (AdamW) or L2 (Adam, SGD) weight decay.
        betas: Adam betas.
        momentum, nesterov: SGD settings.
        eps: Adam epsilon.
        layer_decay: per-depth LR factor in (0, 1]; needs the model and ``model.layer_id``.
        **kwargs: passed to the torch optimizer.

    Raises:
        ValueError: unknown ``optimizer_type`` or unusable ``layer_decay``.
    """
    kind = optimizer_type.lower()
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer_type must be one of {OPTIMIZERS}, got {optimizer_type!r}")
    if isinstance(params, nn.Module):
        groups: Any = param_groups(params, weight_decay, layer_decay)
        for g in groups:
            g["lr"] = lr * g["lr_scale"]
    else:
        if layer_decay not in (None, 1.0):
            raise ValueError("layer_decay needs the model itself, not model.parameters()")
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups, "weight_decay": weight_decay, "lr_scale": 1.0}]
        for g in groups:
            g.setdefault("lr_scale", 1.0)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                 **kwargs)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                **kwargs)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                           weight_decay=weight_decay, **kwargs)
