"""Classification metrics used during validation.

Uses :class:`sitsformer.evaluation.metrics.ClassificationMetrics` (torchmetrics, reduced across
ranks) when it is available; otherwise a small confusion-matrix implementation with the same
surface (``update(logits, target)``, ``compute() -> dict``, ``reset()``), summed across ranks.
"""

from __future__ import annotations

from typing import Any

import torch

from sitsformer.data.sample import IGNORE_INDEX
from sitsformer.training.distributed import all_reduce_sum


class ConfusionMetrics:
    """Overall accuracy, Cohen's kappa, macro/weighted F1 and per-class recall from a confusion
    matrix accumulated over batches (rows = true class, columns = prediction)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.float64)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits.argmax(1) if logits.dim() == target.dim() + 1 else logits
        pred, target = pred.reshape(-1).cpu(), target.reshape(-1).cpu()
        keep = target != self.ignore_index
        k = self.num_classes
        idx = target[keep] * k + pred[keep]
        self.confusion += torch.bincount(idx, minlength=k * k).reshape(k, k).double()

    def compute(self) -> dict[str, float]:
        cm = all_reduce_sum(self.confusion.reshape(-1)).reshape(self.num_classes, -1)
        n = cm.sum()
        if n == 0:
            return {"oa": float("nan"), "kappa": float("nan"), "macro_f1": float("nan")}
        tp = cm.diag()
        oa = tp.sum() / n
        pe = (cm.sum(0) * cm.sum(1)).sum() / n**2
        kappa = (oa - pe) / (1 - pe) if pe < 1 else torch.tensor(1.0, dtype=torch.float64)
        precision = tp / cm.sum(0).clamp(min=1)
        recall = tp / cm.sum(1).clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        present = cm.sum(1) > 0
        return {"oa": float(oa), "kappa": float(kappa), "macro_f1": float(f1[present].mean()),
                "weighted_f1": float((f1 * cm.sum(1)).sum() / n)}


def make_classification_metrics(num_classes: int, ignore_index: int = IGNORE_INDEX) -> Any:
    """The evaluation package's metrics when present, else :class:`ConfusionMetrics`."""
    try:
        from sitsformer.evaluation.metrics import ClassificationMetrics
    except ImportError:
        return ConfusionMetrics(num_classes, ignore_index)
    return ClassificationMetrics(num_classes, ignore_index=ignore_index)
