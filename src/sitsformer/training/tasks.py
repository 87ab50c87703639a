"""Training tasks: what the trainer optimises and measures.

:class:`~sitsformer.training.SITSFormerTrainer` knows nothing about labels or logits; it asks a
*task*. Any object with this surface plugs in (self-supervised pre-training does):

``name: str``
    Stored in checkpoints (``"classification"``, ``"pretrain"`` ...).
``forward_loss(model, batch) -> (loss, outputs)``
    ``batch`` is a collated dict already on the device. ``loss`` is a scalar tensor, the mean
    over the samples that count; ``outputs`` is a dict with at least ``"count"`` (int: samples
    that count, used to weight micro-batches and average epoch losses) and optionally
    ``"correct"`` (int, for the running accuracy in the progress bar) and ``"excluded"`` (int,
    samples left out of the loss, reported per epoch).
``make_metrics() -> metrics`` (optional)
    A fresh validation accumulator with ``update(outputs)``-compatible use through
    ``update_metrics(metrics, outputs)`` and ``compute_metrics(metrics) -> dict[str, float]``
    (already reduced across ranks). Without it only the loss is reported.
``default_monitor: str``
    The validation metric used for "best" checkpoints and early stopping by default.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sitsformer.data.sample import IGNORE_INDEX
from sitsformer.evaluation.metrics import ClassificationMetrics
from sitsformer.models.pretrained import unwrap_model


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Keyword arguments for ``SITSFormer.forward`` from a collated batch."""
    kwargs: dict[str, Any] = {"doy": batch.get("doy")}
    if "pixel_mask" in batch:
        kwargs["pixel_mask"] = batch["pixel_mask"]
    if "dates" in batch:
        kwargs["dates"] = batch["dates"]
    return kwargs


class ClassificationTask:
    """One label per sample, cross-entropy-like criterion, OA / kappa / macro-F1 validation.

    A sample with no valid date has nothing to learn from: the model gives it a finite, fixed
    output, and this task sets its target to ``ignore_index`` so it adds nothing to the loss or
    the metrics. Such samples are counted in ``outputs["excluded"]``.

    Args:
        criterion: a loss taking ``(logits, target)`` that honours ``ignore_index`` (defaults to
            :func:`~sitsformer.training.create_criterion`'s cross-entropy).
        num_classes: for the metrics; read from ``model.config`` when None.
        ignore_index: the target value skipped by loss and metrics.
    """

    name = "classification"
    default_monitor = "val_loss"

    def __init__(self, criterion: nn.Module | None = None, num_classes: int | None = None,
                 ignore_index: int = IGNORE_INDEX):
        if criterion is None:
            from sitsformer.training.losses import create_criterion

            criterion = create_criterion(ignore_index=ignore_index)
        self.criterion = criterion
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Labels with samples lacking any valid date replaced by ``ignore_index``."""
        target = batch["label"].long()
        has_date = batch["mask"].bool().any(dim=1)
        excluded = int((~has_date & (target != self.ignore_index)).sum()) if target.dim() == 1 else 0
        if target.dim() == 1:
            target = torch.where(has_date, target, torch.full_like(target, self.ignore_index))
        return target, excluded

    def forward_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                     ) -> tuple[torch.Tensor, dict[str, Any]]:
        target, excluded = self.targets(batch)
        logits = model(batch["sequence"], batch["mask"], **model_inputs(batch))  # (B, K)
        loss = self.criterion(logits, target)
        keep = target != self.ignore_index
        with torch.no_grad():
            correct = int((logits.argmax(1)[keep] == target[keep]).sum())
        return loss, {"logits": logits.detach(), "target": target, "count": int(keep.sum()),
                      "correct": correct, "excluded": excluded}

    def make_metrics(self, model: nn.Module) -> Any:
        k = self.num_classes if self.num_classes is not None else unwrap_model(
            model).config.num_classes
        return ClassificationMetrics(k, ignore_index=self.ignore_index)

    def update_metrics(self, metrics: Any, outputs: dict[str, Any]) -> None:
        metrics.update(outputs["logits"].float(), outputs["target"])

    def compute_metrics(self, metrics: Any) -> dict[str, float]:
        return {k: float(v) for k, v in metrics.compute().items()
                if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)}
