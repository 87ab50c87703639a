"""``create_criterion``: cross-entropy (optionally class-weighted, label-smoothed) and focal loss.

All losses take logits ``(B, K)`` (or ``(B, K, H, W)``) and integer targets ``(B,)`` (or
``(B, H, W)``); targets equal to ``ignore_index`` (``-100``) are skipped. When every target of
a batch is ignored the loss is an exact zero connected to the graph (never ``0 / 0 = NaN``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sitsformer.data.sample import IGNORE_INDEX

LOSSES = ("cross_entropy", "focal")


def count_labels(source: Any, num_classes: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Count labels per class in a dataset (items with ``"label"``), a loader (batches with
    ``"label"``) or a sequence/tensor of labels. Ignored labels are not counted."""
    counts = torch.zeros(num_classes, dtype=torch.float64)

    def add(labels: Any) -> None:
        t = torch.as_tensor(labels).reshape(-1).long()
        t = t[t != ignore_index]
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(
                f"label values must be in 0..{num_classes - 1} (or {ignore_index}); "
                f"found {int(t.min())}..{int(t.max())}"
            )
        counts.add_(torch.bincount(t, minlength=num_classes).double())

    if isinstance(source, torch.Tensor) or (
        isinstance(source, Sequence) and len(source) and not isinstance(source[0], dict)
    ):
        add(source)
        return counts
    if isinstance(source, torch.utils.data.DataLoader) or not hasattr(source, "__getitem__"):
        for batch in source:
            add(batch["label"])
        return counts
    for i in range(len(source)):
        add(source[i]["label"])
    return counts


def compute_class_weights(source: Any, num_classes: int, ignore_index: int = IGNORE_INDEX,
                          ) -> torch.Tensor:
    """Inverse-frequency weights ``n / (K * count_k)`` from a dataset, loader or label list.

    A class absent from ``source`` gets weight 0 (it cannot be learnt from it anyway) and a
    warning-free, finite result.
    """
    counts = count_labels(source, num_classes, ignore_index)
    total = counts.sum()
    weights = torch.where(counts > 0, total / (num_classes * counts.clamp(min=1)),
                          torch.zeros_like(counts))
    return weights.float()


class CrossEntropyLoss(nn.Module):
    """Cross-entropy with class weights, label smoothing and ignore index; NaN-free when a batch
    has no counted target."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.register_buffer("weight", weight if weight is None else weight.float())
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not bool((target != self.ignore_index).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), target, weight=self.weight,
                               ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)


class FocalLoss(nn.Module):
    """Focal loss ``-(1 - p_t)^gamma * log p_t`` (Lin et al., 2017), averaged over counted
    targets, with optional class weights (``alpha``) and label smoothing."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None,
                 label_smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("weight", weight if weight is None else weight.float())
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        keep = target != self.ignore_index
        if not bool(keep.any()):
            return logits.sum() * 0.0
        if logits.dim() > 2:  # (B, K, H, W) -> (B*H*W, K)
            logits = logits.movedim(1, -1).reshape(-1, logits.shape[1])
            target, keep = target.reshape(-1), keep.reshape(-1)
        logits, target = logits[keep].float(), target[keep]
        logp = F.log_softmax(logits, dim=-1)
        k = logits.shape[-1]
        onehot = F.one_hot(target, k).float()
        soft = onehot * (1 - self.label_smoothing) + self.label_smoothing / k
        focal = (1 - logp.exp()).pow(self.gamma)
        per = -(soft * focal * logp).sum(-1)
        if self.weight is not None:
            w = self.weight[target]
            return (per * w).sum() / w.sum().clamp(min=1e-12)
        return per.mean()


def create_criterion(loss_type: str = "cross_entropy", num_classes: int | None = None,
                     class_weights: torch.Tensor | Sequence[float] | str | None = None,
                     weight_source: Any = None, label_smoothing: float = 0.0,
                     focal_gamma: float = 2.0, ignore_index: int = IGNORE_INDEX) -> nn.Module:
    """Build a classification loss.

    Args:
        loss_type: ``"cross_entropy"`` (alias ``"ce"``) or ``"focal"``.
        num_classes: needed when weights are computed.
        class_weights: a tensor/list of per-class weights, or ``"balanced"`` to compute
            inverse-frequency weights from ``weight_source``.
        weight_source: a dataset, DataLoader or labels to count classes in.
        label_smoothing: in [0, 1).
        focal_gamma: focusing exponent of the focal loss.
        ignore_index: target value to skip (per-pixel labels use it for unlabelled pixels).

    Raises:
        ValueError: unknown ``loss_type``, or ``"balanced"`` without ``weight_source`` and
            ``num_classes``.
    """
    kind = {"ce": "cross_entropy", "crossentropy": "cross_entropy"}.get(loss_type.lower(),
                                                                         loss_type.lower())
    if kind not in LOSSES:
        raise ValueError(f"loss_type must be one of {LOSSES}, got {loss_type!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    weight: torch.Tensor | None = None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be 'balanced', a list or None, got {class_weights!r}")
        if weight_source is None or num_classes is None:
            raise ValueError("class_weights='balanced' needs weight_source (a dataset or loader) "
                             "and num_classes")
        weight = compute_class_weights(weight_source, num_classes, ignore_index)
    elif class_weights is not None:
        weight = torch.as_tensor(class_weights, dtype=torch.float32)
        if num_classes is not None and weight.numel() != num_classes:
            raise ValueError(f"class_weights has {weight.numel()} values, expected num_classes="
                             f"{num_classes}")
    if kind == "focal":
        return FocalLoss(focal_gamma, weight, label_smoothing, ignore_index)
    return CrossEntropyLoss(weight, label_smoothing, ignore_index)

