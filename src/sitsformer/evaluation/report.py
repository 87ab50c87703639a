"""Evaluation reports: JSON, Markdown, confusion-matrix and per-class plots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_confusion_matrix", "plot_per_class", "render_markdown", "write_report"]


def _normalised(cm: np.ndarray) -> np.ndarray:
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.zeros_like(cm, dtype=np.float64)
    np.divide(cm, rows, out=out, where=rows > 0)
    return out


def plot_confusion_matrix(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save the confusion matrix as counts (left) and row-normalised (right, recall per row).

    Args:
        metrics: the dict of :meth:`ClassificationMetrics.compute`.
        path: PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    names = [c["name"] for c in metrics["per_class"]]
    k = len(names)
    size = max(4.0, 0.45 * k + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size), constrained_layout=True)
    for ax, data, title, fmt in ((axes[0], cm, "counts", "d"),
                                 (axes[1], _normalised(cm), "row-normalised (recall)", ".2f")):
        im = ax.imshow(data, cmap="Blues", vmin=0)
        ax.set_title(f"Confusion matrix, {title}")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_xticks(range(k), names, rotation=45, ha="right")
        ax.set_yticks(range(k), names)
        if k <= 20:
            top = data.max() if data.size else 0
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, format(data[i, j], fmt), ha="center", va="center", fontsize=8,
                            color="white" if top and data[i, j] > top / 2 else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_per_class(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save grouped bars of precision, recall, F1 and IoU per class (support in the labels)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    per = metrics["per_class"]
    k = len(per)
    x = np.arange(k)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * k + 2), 4.5), constrained_layout=True)
    for i, key in enumerate(("precision", "recall", "f1", "iou")):
        ax.bar(x + (i - 1.5) * 0.2, [c[key] for c in per], width=0.2, label=key)
    ax.set_xticks(x, [f"{c['name']}\n(n={c['support']})" for c in per], rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"Per-class scores (OA {metrics['oa']:.3f}, macro-F1 {metrics['macro_f1']:.3f})")
    ax.legend(ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def render_markdown(metrics: dict[str, Any], title: str = "Evaluation report",
                    info: dict[str, Any] | None = None) -> str:
    """The report as Markdown: run information, summary scores, per-class table, matrix."""
    lines = [f"# {title}", ""]
    for key, value in (info or {}).items():
        lines.append(f"- **{key}**: {value}")
    if info:
        lines.append("")
    lines += ["## Summary", "", "| metric | value |", "|---|---|"]
    for key, name in (("oa", "overall accuracy"), ("kappa", "Cohen's kappa"),
                      ("macro_f1", "macro F1"), ("weighted_f1", "weighted F1"),
                      ("miou", "mean IoU")):
        lines.append(f"| {name} | {metrics[key]:.4f} |")
    lines.append(f"| samples scored | {metrics['num_samples']} |")
    lines += ["", "Macro averages run over the classes present in the targets or the "
              "predictions.", "", "## Per class", "",
              "| class | precision | recall | F1 | IoU | support |", "|---|---|---|---|---|---|"]
    for c in metrics["per_class"]:
        lines.append(f"| {c['name']} | {c['precision']:.4f} | {c['recall']:.4f} | "
                     f"{c['f1']:.4f} | {c['iou']:.4f} | {c['support']} |")
    names = [c["name"] for c in metrics["per_class"]]
    lines += ["", "## Confusion matrix (rows: true class, columns: predicted class)", "",
              "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, metrics["confusion_matrix"]):
        lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    lines.append("")
    return "\n".join(lines)


def write_report(metrics: dict[str, Any], out_dir: str | os.PathLike[str],
                 title: str = "Evaluation report", info: dict[str, Any] | None = None,
                 plots: bool = True) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md``, ``confusion_matrix.png`` and ``per_class.png``.

    Args:
        metrics: the dict of :meth:`ClassificationMetrics.compute`.
        out_dir: folder (created if needed).
        title: report title.
        info: extra facts shown at the top of the report and stored under ``"info"`` in the
            JSON (checkpoint, data source, excluded samples ...).
        plots: also write the two PNG figures.

    Returns:
        The written files by kind (``json``, ``markdown``, ``confusion_matrix``, ``per_class``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "metrics.json", "markdown": out / "report.md"}
    payload = {**metrics, "info": dict(info or {})}
    files["json"].write_text(json.dumps(payload, indent=2, default=str) + "\n")
    files["markdown"].write_text(render_markdown(metrics, title, info))
    if plots:
        files["confusion_matrix"] = plot_confusion_matrix(metrics, out / "confusion_matrix.png")
        files["per_class"] = plot_per_class(metrics, out / "per_class.png")
    return files
