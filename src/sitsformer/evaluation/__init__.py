"""Evaluation: classification metrics (distributed-safe), evaluation runs, reports and plots."""

from sitsformer.evaluation.evaluate import evaluate_checkpoint, evaluate_model, label_mapping
from sitsformer.evaluation.metrics import ClassificationMetrics, metrics_from_confusion_matrix
from sitsformer.evaluation.report import (
    plot_confusion_matrix,
    plot_per_class,
    render_markdown,
    write_report,
)

__all__ = [
    "ClassificationMetrics",
    "evaluate_checkpoint",
    "evaluate_model",
    "label_mapping",
    "metrics_from_confusion_matrix",
    "plot_confusion_matrix",
    "plot_per_class",
    "render_markdown",
    "write_report",
]
