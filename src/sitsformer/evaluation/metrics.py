"""Classification metrics, reduced across distributed ranks.

Every number is derived from one confusion matrix, accumulated by torchmetrics'
``MulticlassConfusionMatrix``. Its state is a sum, so ``torch.distributed`` runs reduce it
exactly (torchmetrics all-reduces the state inside ``compute()``), and all metrics of a run
agree with each other.

Averaging convention (the same as scikit-learn's default ``labels=None``): macro and weighted
averages run over the classes that occur in the targets or in the predictions. A class that
never occurs in either says nothing about the model and is left out of the average (its
per-class entry is still reported, with support 0). Precision, recall, F1 and IoU of a class
whose denominator is zero are 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from sitsformer.data.sample import IGNORE_INDEX

__all__ = ["ClassificationMetrics", "metrics_from_confusion_matrix"]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def metrics_from_confusion_matrix(
    confusion_matrix: np.ndarray | torch.Tensor, class_names: list[str] | None = None
) -> dict[str, Any]:
    """All classification metrics from a confusion matrix.

    Args:
        confusion_matrix: ``(K, K)`` counts, rows = true class, columns = predicted class.
        class_names: optional names of the ``K`` classes (default ``"0"``, ``"1"``, ...).

    Returns:
        A dict with ``oa``, ``kappa``, ``macro_f1``, ``weighted_f1``, ``miou`` (floats),
        ``num_samples`` (int), ``per_class`` (a list of dicts with ``index``, ``name``,
        ``precision``, ``recall``, ``f1``, ``iou``, ``support``) and ``confusion_matrix``
        (list of lists of ints).

    Raises:
        ValueError: if the matrix is not square, is negative, does not match ``class_names``
            or holds no sample at all.
    """
    if isinstance(confusion_matrix, torch.Tensor):
        confusion_matrix = confusion_matrix.detach().cpu().numpy()
    cm = np.asarray(confusion_matrix, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {cm.shape}")
    if (cm < 0).any():
        raise ValueError("confusion matrix has negative counts")
    k = cm.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ValueError(
            f"class_names has {len(class_names)} names, the confusion matrix has {k} classes"
        )
    n = int(cm.sum())
    if n == 0:
        raise ValueError(
            "no sample to score: every target was the ignore index (or update() was never called)"
        )
    cmf = cm.astype(np.float64)
    tp = np.diag(cmf)
    support = cmf.sum(axis=1)  # true count per class
    predicted = cmf.sum(axis=0)
    fp = predicted - tp
    fn = support - tp
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    iou = _safe_div(tp, tp + fp + fn)
    present = (support + predicted) > 0

    oa = float(tp.sum() / n)
    # Cohen's kappa, written as scikit-learn writes it (same float operations).
    expected = np.outer(support, predicted) / n
    w = np.ones((k, k)) - np.eye(k)
    den = float(np.sum(w * expected))
    kappa = 1.0 - float(np.sum(w * cmf)) / den if den > 0 else 1.0  # one class only: perfect
    macro_f1 = float(np.mean(f1[present]))
    weighted_f1 = float(np.average(f1[present], weights=support[present]))
    miou = float(np.mean(iou[present]))
    per_class = [
        {
            "index": i,
            "name": class_names[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "iou": float(iou[i]),
            "support": int(cm[i].sum()),
        }
        for i in range(k)
    ]
    return {
        "oa": oa,
        "kappa": kappa,
        "macro_f1": macro_f1,
        "weighted_f1": weighted_f1,
        "miou": miou,
        "num_samples": n,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


class ClassificationMetrics(MulticlassConfusionMatrix):
    """Overall accuracy, kappa, F1, IoU and the confusion matrix of a multi-class classifier.

    A torchmetrics metric (so ``.to(device)`` works and the state is summed across
    ``torch.distributed`` ranks inside ``compute()``).

    Example:
        >>> m = ClassificationMetrics(num_classes=3, class_names=["a", "b", "c"])
        >>> m.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, -100]))
        >>> m.compute()["oa"]
        0.6666666666666666

    Args:
        num_classes: number of classes ``K``.
        ignore_index: target value that is not scored (default -100, the library's
            ``IGNORE_INDEX``).
        class_names: optional class names, used in ``per_class``.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = IGNORE_INDEX,
        class_names: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} names, expected num_classes={num_classes}"
            )
        super().__init__(num_classes=num_classes, ignore_index=ignore_index, **kwargs)
        self.class_names = list(class_names) if class_names is not None else None

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        """Add a batch.

        Args:
            preds: logits / probabilities ``(B, K)`` or ``(B, K, H, W)``, or class indices
                ``(B,)`` or ``(B, H, W)`` (integer dtype).
            target: class indices ``(B,)`` or ``(B, H, W)``; ``ignore_index`` entries are
                skipped.

        Raises:
            ValueError: if the shapes do not match or the number of classes is wrong.
        """
        preds = torch.as_tensor(preds)
        target = torch.as_tensor(target)
        if preds.is_floating_point():
            if preds.dim() != target.dim() + 1 or preds.shape[1] != self.num_classes:
                raise ValueError(
                    f"logits must be (B, K={self.num_classes}, ...) for target of shape "
                    f"{tuple(target.shape)}, got {tuple(preds.shape)}"
                )
            preds = preds.argmax(dim=1)
        if preds.shape != target.shape:
            raise ValueError(
                f"predicted classes {tuple(preds.shape)} and target {tuple(target.shape)} "
                "must have the same shape"
            )
        dev = self.confmat.device  # accept batches from any device (e.g. CUDA logits, CPU state)
        super().update(preds.reshape(-1).long().to(dev), target.reshape(-1).long().to(dev))

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        """All metrics of the batches seen so far (see ``metrics_from_confusion_matrix``)."""
        return metrics_from_confusion_matrix(self.confmat, self.class_names)
