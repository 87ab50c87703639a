"""Score a model on a labelled dataset: metrics, exclusions, and the report files."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from sitsformer._progress import progress_bar

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
                   indices: Any = None, return_predictions: bool = False) -> dict[str, Any]:
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
        indices: score only these samples of ``dataset`` (default: all).
        return_predictions: also return ``"predictions"``, the predicted class of every
            sample of ``indices`` in that order (``-1`` for a sample without a valid date).

    Returns:
        The metrics dict of :meth:`ClassificationMetrics.compute` plus ``"counts"``
        (``samples``, ``scored``, ``excluded_no_valid_date``, ``unlabelled``) and
        ``"data_exclusions"`` (what the reader left out, from ``dataset.meta``).
    """
    cfg = model.config  # type: ignore[attr-defined]
    meta = dict(getattr(dataset, "meta", {}) or {})
    where = str(meta.get("source", type(dataset).__name__))
    bands = list(getattr(dataset, "bands", None) or [f"band{i}" for i in range(cfg.in_channels)])
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, np.int64)
    if not len(indices):
        raise ValueError(f"{where}: no sample to score")
    first = dataset[int(indices[0])]
    # a day of year is a date when the reader says so (the original SITS-Former layout stores
    # days of year without a year)
    has_dates = meta.get("time_axis") != "t_index" and (
        "dates" in first or (meta.get("time_axis") == "dates" and "doy" in first))
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
    # one process scores the whole dataset: no sync with other ranks (train's test report
    # runs on rank 0 only)
    metrics = ClassificationMetrics(cfg.num_classes, ignore_index=IGNORE_INDEX,
                                    class_names=[str(n) for n in names],
                                    sync_on_compute=False).to(dev)
    loader = DataLoader(PreparedDataset(dataset, indices, spec),  # type: ignore[arg-type]
                        batch_size=batch_size, shuffle=False, collate_fn=collate,
                        num_workers=num_workers)
    counts = {"samples": 0, "scored": 0, "excluded_no_valid_date": 0, "unlabelled": 0}
    predictions: list[np.ndarray] = []
    for batch in progress_bar(loader, enabled=progress, desc="evaluate", unit="batch"):
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
        if return_predictions:
            pred = logits.argmax(1).cpu().masked_fill(no_date, -1)
            predictions.append(pred.numpy().astype(np.int64))
        counts["scored"] += int((target != IGNORE_INDEX).sum())
    result = metrics.compute()
    result["counts"] = counts
    result["data_exclusions"] = dict(meta.get("exclusions") or {})
    if return_predictions:
        result["predictions"] = np.concatenate(predictions)
    return result


SPLIT_CHOICES = ("default", "all", "train", "val", "test")


def _same_source(data: Any, meta: dict[str, Any]) -> bool:
    source = meta.get("source")
    if not source or not isinstance(data, (str, os.PathLike)):
        return False
    try:
        return os.path.realpath(str(data)) == os.path.realpath(str(source))
    except OSError:  # pragma: no cover
        return False


def select_split(dataset: Any, ckpt: dict[str, Any], split: str, same_source: bool,
                 where: str) -> tuple[np.ndarray, str, list[str]]:
    """The samples of ``dataset`` to score for ``split`` (see :func:`evaluate_checkpoint`):
    ``(indices, split used, warnings)``."""
    from sitsformer.data.module import sample_ids

    meta = dict(ckpt.get("data_meta") or {})
    recorded = meta.get("split_ids")
    ids = sample_ids(dataset)
    n = len(ids)
    notes: list[str] = []
    if split == "default":
        split = "test" if same_source and recorded else "all"
    if split == "all":
        idx = np.arange(n)
    elif not recorded and getattr(dataset, "split", None) is not None and not same_source:
        # a checkpoint that records no split (e.g. the original SITS-Former's) on a source
        # with its own (TRAIN/VALIDATE/TEST folders, a split column): that split
        idx = np.flatnonzero(np.asarray(dataset.split) == split)
        if not len(idx):
            raise ValueError(f"{where}: the source's own split has no {split!r} sample "
                             f"(it has {sorted(set(np.asarray(dataset.split).tolist()))})")
        notes.append(f"--split {split}: the source's own split ({len(idx)} samples); the "
                     "checkpoint records none")
    else:
        if not same_source:
            raise ValueError(f"--split {split} needs the training source "
                             f"({meta.get('source')!r}) as --data; {where} is another source: "
                             "use --split all")
        if not recorded:
            raise ValueError(f"{where}: the checkpoint does not record which samples were "
                             f"train/val/test (trained before split ids were stored, or with "
                             f"more than the stored limit); use --split all")
        wanted = set(recorded[split])
        idx = np.flatnonzero([i in wanted for i in ids])
        if len(idx) != len(wanted):
            raise ValueError(f"{where}: the checkpoint's {split} split has {len(wanted)} "
                             f"samples, {len(idx)} of them are in the data (the source changed?)")
    if recorded and recorded.get("train"):
        seen = set(recorded["train"])
        overlap = int(sum(ids[i] in seen for i in idx)) if (same_source or split != "all") \
            else 0
        if overlap:
            notes.append(f"{overlap} of the {len(idx)} samples scored were in the model's "
                         "training split: these scores are not a held-out estimate")
    return idx, split, notes


def drop_training_samples(dataset: Any, ckpt: dict[str, Any], idx: np.ndarray, spec: InputSpec,
                          asked: str, where: str) -> tuple[np.ndarray, list[str]]:
    """``idx`` less the samples whose values match the checkpoint's training samples
    (:func:`~sitsformer.data.module.content_fingerprints`): another file of the training data
    (a CSV and its npz) has other ids but the same values. With ``asked="all"`` they are
    kept and a warning says how many there are."""
    from sitsformer.data.module import content_fingerprints

    known = (ckpt.get("data_meta") or {}).get("train_fingerprints")
    if not known:
        return idx, []
    known = set(known)
    seen = np.array([f in known for f in content_fingerprints(dataset, idx, spec)], bool)
    n = int(seen.sum())
    if not n:
        return idx, []
    if asked == "all":
        return idx, [f"{n} of the {len(idx)} samples scored have the values of samples in the "
                     "model's training split: these scores are not a held-out estimate"]
    if n == len(idx):
        raise ValueError(f"{where}: all {n} samples have the values of samples in the model's "
                         "training split (another file of the training data?); nothing "
                         "held out is left to score. Pass --split all to score them anyway")
    return idx[~seen], [f"{n} of the {len(idx)} samples have the values of samples in the "
                        f"model's training split and were left out; scored the other "
                        f"{len(idx) - n} (--split all scores every sample)"]


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], data: Any, out_dir: str | None = None,
                        *, batch_size: int = 256, precision: str = "fp32",
                        device: str | None = None, progress: bool = True,
                        data_options: dict[str, Any] | None = None,
                        split: str = "default") -> dict[str, Any]:
    """Rebuild the model from ``checkpoint`` alone, score it on ``data``, write the report.

    Args:
        checkpoint: a sitsformer checkpoint file.
        data: a dataset, or a path that ``sitsformer.data.open_source`` reads.
        out_dir: folder for ``metrics.json``, ``report.md`` and the PNGs (None: no files).
        data_options: passed to ``open_source`` (default: the training run's
            ``data.options`` when ``data`` is the training source).
        split: ``"default"`` (the checkpoint's test split when ``data`` is the training
            source, else every sample except those whose values match the checkpoint's
            training samples), ``"all"``, ``"train"``, ``"val"`` or ``"test"``
            (the samples recorded in the checkpoint). Scoring samples the model trained on
            warns (``result["warnings"]``).

    Returns:
        The metrics (see :func:`evaluate_model`), with ``"split"``, ``"scored_ids"``,
        ``"warnings"`` and, when ``out_dir`` is given, ``"files"``.
    """
    import warnings

    from sitsformer.data.errors import DataWarning
    from sitsformer.data.module import sample_ids

    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {SPLIT_CHOICES}, got {split!r}")
    from sitsformer.evaluation.report import write_report

    model, ckpt = load_model(checkpoint, map_location=device or "cpu")
    if "encoder" in ckpt["model_config"]:
        raise ValueError(f"{checkpoint} is a pre-training checkpoint (a reconstruction model, "
                         "no classifier); fine-tune it first: sitsformer finetune --pretrained "
                         f"{checkpoint}")
    spec = InputSpec.from_checkpoint(ckpt)
    same = _same_source(data, dict(ckpt.get("data_meta") or {}))
    if isinstance(data, (str, os.PathLike)):
        from sitsformer.data import open_source

        source = str(data)
        if data_options is None and same:
            data_options = dict(((ckpt.get("config") or {}).get("data") or {}).get("options")
                                or {})
        data = open_source(data, **(data_options or {}))
    else:
        source = str(getattr(data, "meta", {}).get("source", type(data).__name__))
    idx, used, notes = select_split(data, ckpt, split, same, source)
    if used == "all" and not same:  # ids cannot tell: recognise training samples by value
        n_all = len(idx)
        idx, more = drop_training_samples(data, ckpt, idx, spec, split, source)
        notes += more
        if len(idx) < n_all:
            used = "all but the training samples"
    for note in notes:
        warnings.warn(f"{source}: {note}", DataWarning, stacklevel=2)
    result = evaluate_model(model, data, spec=spec, batch_size=batch_size,
                            precision=precision, progress=progress, indices=idx)
    result["split"] = used
    result["scored_ids"] = sample_ids(data)[idx].tolist()
    result["warnings"] = notes
    if out_dir is not None:
        c = result["counts"]
        info = {"checkpoint": str(checkpoint), "data": source,
                "split": used if used.startswith("all") else f"{used} (the samples the checkpoint "
                "recorded)", "samples": c["samples"], "scored": c["scored"],
                "excluded (no valid date)": c["excluded_no_valid_date"],
                "unlabelled": c["unlabelled"],
                "excluded by the reader": "; ".join(
                    f"{k}: {v.get('count', v) if isinstance(v, dict) else v}"
                    for k, v in result["data_exclusions"].items()) or "nothing",
                "precision": precision, **({"warning": " ".join(notes)} if notes else {})}
        files = write_report(result, out_dir, title="SITS-Former evaluation", info=info)
        result["files"] = {k: str(v) for k, v in files.items()}
    return result
