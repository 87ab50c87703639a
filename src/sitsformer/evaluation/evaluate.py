"""Score a model on a labelled dataset: metrics, exclusions, and the report files."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sitsformer.data.errors import InputMismatchError
from sitsformer.data.module import PreparedDataset
from sitsformer.data.sample import IGNORE_INDEX, collate
from sitsformer.data.spec import InputSpec
from sitsformer.evaluation.metrics import ClassificationMetrics
from sitsformer.models.checkpoint import load_model

__all__ = ["evaluate_checkpoint", "evaluate_model", "label_mapping"]


def label_mapping(data_classes: list[str] | None, model_classes: list[str] | None,
                  where: str = "data") -> np.ndarray | None:
    """Index map from the dataset's class indices to the model's, by class name.

    Returns None when the lists agree (or one is unknown).

    Raises:
        InputMismatchError: the dataset has classes the model does not know.
    """
    if not data_classes or not model_classes or list(data_classes) == list(model_classes):
        return None
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise InputMismatchError(
            f"{where}: class(es) {unknown} are not among the checkpoint's classes "
            f"{list(model_classes)}")
    return np.array([list(model_classes).index(c) for c in data_classes], dtype=np.int64)


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset: Dataset, *, spec: InputSpec | None = None,
                   batch_size: int = 256, precision: str = "fp32",
                   device: str | torch.device | None = None, progress: bool = True,
                   class_names: list[str] | None = None, num_workers: int = 0,
                   ) -> dict[str, Any]:
    """Classify every sample of ``dataset`` and score it.

    Inputs are prepared with ``spec.transform()`` as in training (scale, normalisation) and
    checked against the spec (bands, time axis, length). Samples without any valid date are not scored: they are
    counted under ``excluded_no_valid_date``. Samples whose label is the ignore index are
    counted under ``unlabelled``.

    Args:
        model: a classifier returning ``(B, K)`` logits.
        dataset: a dataset of contract samples with a scalar ``label``.
        spec: the model's :class:`~sitsformer.data.InputSpec` (``InputSpec.from_checkpoint``);
            None = the dataset's values as they are.
        batch_size: samples per forward pass.
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        device: default: the model's device.
        progress: tqdm bar.
        class_names: the model's class names (default ``spec.classes``).
        num_workers: DataLoader workers.

    Returns:
        The metrics dict of :meth:`ClassificationMetrics.compute` plus ``"counts"``
        (``samples``, ``scored``, ``excluded_no_valid_date``, ``unlabelled``) and
        ``"data_exclusions"`` (what the reader left out, from ``dataset.meta``).
    """
    cfg = model.config  # type: ignore[attr-defined]
    meta = dict(getattr(dataset, "meta", {}) or {})
    where = str(meta.get("source", type(dataset).__name__))
    bands = list(getattr(dataset, "bands", None) or [f"band{i}" for i in range(cfg.in_channels)])
    first = dataset[0]
    has_dates = meta.get("time_axis") != "t_index" and "dates" in first
    if spec is None:  # the model's bands (names when it has them), the input's time axis
        spec = InputSpec(bands=cfg.bands or [f"band{i}" for i in range(cfg.in_channels)],
                         time_axis="dates" if has_dates else "t_index")
    spec.check_input(bands, has_dates, int(np.asarray(first["mask"]).shape[0]), where,
                     date_encoding=cfg.date_encoding, max_seq_len=cfg.max_seq_len)
    names = class_names or spec.classes or [str(i) for i in range(cfg.num_classes)]
    remap = label_mapping(getattr(dataset, "classes", None), list(names), where)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval().to(dev)
    autocast = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    metrics = ClassificationMetrics(cfg.num_classes, ignore_index=IGNORE_INDEX,
                                    class_names=[str(n) for n in names]).to(dev)
    loader = DataLoader(PreparedDataset(dataset, range(len(dataset)), spec),  # type: ignore[arg-type]
                        batch_size=batch_size, shuffle=False, collate_fn=collate,
                        num_workers=num_workers)
    counts = {"samples": 0, "scored": 0, "excluded_no_valid_date": 0, "unlabelled": 0}
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        if "label" not in batch:
            raise ValueError(f"{where}: samples have no 'label'; evaluation needs labels")
        target = batch["label"].long()
        if target.dim() != 1:
            raise ValueError(f"{where}: per-pixel label maps {tuple(target.shape)} need a map: "
                             "use sitsformer.inference.predict_raster and score the map")
        if remap is not None:
            ok = target >= 0
            target = torch.where(ok, torch.from_numpy(remap)[target.clamp(min=0)], target)
        no_date = ~batch["mask"].bool().any(1)
        counts["samples"] += len(target)
        counts["excluded_no_valid_date"] += int(no_date.sum())
        counts["unlabelled"] += int(((target == IGNORE_INDEX) & ~no_date).sum())
        target = target.masked_fill(no_date, IGNORE_INDEX)
        x = batch["sequence"]
        kwargs: dict[str, Any] = {"doy": batch.get("doy")}
        for key in ("pixel_mask", "dates"):
            if key in batch:
                kwargs[key] = batch[key].to(dev)
        if kwargs["doy"] is not None:
            kwargs["doy"] = kwargs["doy"].to(dev)
        with autocast:
            logits = model(x.to(dev), batch["mask"].to(dev), **kwargs)
        metrics.update(logits.float(), target.to(dev))
        counts["scored"] += int((target != IGNORE_INDEX).sum())
    result = metrics.compute()
    result["counts"] = counts
    result["data_exclusions"] = dict(meta.get("exclusions") or {})
    return result


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], data: Any, out_dir: str | None = None,
                        *, batch_size: int = 256, precision: str = "fp32",
                        device: str | None = None, progress: bool = True,
                        data_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rebuild the model from ``checkpoint`` alone, score it on ``data``, write the report.

    Args:
        checkpoint: a sitsformer checkpoint file.
        data: a dataset, or a path that ``sitsformer.data.open_source`` reads.
        out_dir: folder for ``metrics.json``, ``report.md`` and the PNGs (None: no files).
        data_options: passed to ``open_source``.

    Returns:
        The metrics (see :func:`evaluate_model`), with ``"files"`` when ``out_dir`` is given.
    """
    from sitsformer.evaluation.report import write_report

    model, ckpt = load_model(checkpoint, map_location=device or "cpu")
    if "encoder" in ckpt["model_config"]:
        raise ValueError(f"{checkpoint} is a pre-training checkpoint (a reconstruction model, "
                         "no classifier); fine-tune it first: sitsformer finetune --pretrained "
                         f"{checkpoint}")
    spec = InputSpec.from_checkpoint(ckpt)
    if isinstance(data, (str, os.PathLike)):
        from sitsformer.data import open_source

        source = str(data)
        data = open_source(data, **(data_options or {}))
    else:
        source = str(getattr(data, "meta", {}).get("source", type(data).__name__))
    result = evaluate_model(model, data, spec=spec, batch_size=batch_size,
                            precision=precision, progress=progress)
    if out_dir is not None:
        c = result["counts"]
        info = {"checkpoint": str(checkpoint), "data": source,
                "samples": c["samples"], "scored": c["scored"],
                "excluded (no valid date)": c["excluded_no_valid_date"],
                "unlabelled": c["unlabelled"],
                "excluded by the reader": "; ".join(
                    f"{k}: {v.get('count', v) if isinstance(v, dict) else v}"
                    for k, v in result["data_exclusions"].items()) or "nothing",
                "precision": precision}
        files = write_report(result, out_dir, title="SITS-Former evaluation", info=info)
        result["files"] = {k: str(v) for k, v in files.items()}
    return result
