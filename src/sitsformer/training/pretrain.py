"""Self-supervised pre-training as a trainer task.

:class:`ReconstructionTask` plugs a :class:`~sitsformer.models.pretrain.SITSFormerForPretraining`
into :class:`~sitsformer.training.SITSFormerTrainer`, so pre-training gets everything training
has (mixed precision, resume, tracking, distributed). It needs no labels: any source of samples
works (a GeoTIFF folder, an EOPatch, a sample store without labels; a ``label`` key, if
present, is ignored).

In training, the dates to hide are drawn from the global random generator (reproducible with
the run's seed and restored on resume). In validation they come from a generator reset at every
validation pass, so every epoch's reconstruction error is measured on the same hidden dates,
next to the linear-interpolation baseline on exactly those positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitsformer.models.pretrain import interpolation_baseline
from sitsformer.training.config import ExperimentConfig
from sitsformer.training.distributed import all_reduce_sum


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def date_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Positions in time used to interpolate: acquisition ``dates`` (days since 1970) when the
    batch has them, else ``doy`` when it increases over every sample's valid dates (one season),
    else ``None`` (the date index)."""
    if "dates" in batch:
        return batch["dates"]
    doy, mask = batch.get("doy"), batch["mask"].bool()
    if doy is None or not bool((doy[mask] > 0).all()):
        return None
    # each valid date's doy must exceed the previous valid one's (no new year inside a series)
    for row, keep in zip(doy, mask):
        values = row[keep]
        if values.numel() > 1 and not bool((values[1:] > values[:-1]).all()):
            return None
    return doy


class ReconstructionMetrics:
    """Mean squared and absolute reconstruction errors of the model and of the baseline over
    the same hidden positions, summed over batches and reduced over ranks."""

    def __init__(self) -> None:
        self.sums = torch.zeros(5, dtype=torch.float64)  # sse, sae, base_sse, base_sae, n

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
               baseline: torch.Tensor | None) -> None:
        w = weight.bool().expand_as(pred)
        err = (pred.float() - target.float())[w].double()
        row = [float((err ** 2).sum()), float(err.abs().sum()), 0.0, 0.0, float(w.sum())]
        if baseline is not None:
            berr = (baseline.float() - target.float())[w].double()
            row[2], row[3] = float((berr ** 2).sum()), float(berr.abs().sum())
        self.sums += torch.tensor(row, dtype=torch.float64)

    def compute(self) -> dict[str, float]:
        sse, sae, bsse, bsae, n = all_reduce_sum(self.sums).tolist()
        if n == 0:
            return {"mse": float("nan"), "mae": float("nan"), "baseline_mse": float("nan"),
                    "baseline_mae": float("nan"), "skill": float("nan"), "positions": 0.0}
        mse, base = sse / n, bsse / n
        return {"mse": mse, "mae": sae / n, "baseline_mse": base, "baseline_mae": bsae / n,
                "skill": 1.0 - mse / base if base > 0 else float("nan"), "positions": n}


class ReconstructionTask:
    """Masked-date reconstruction: the pre-training task of SITS-Former.

    Args:
        seed: seed of the validation hiding draws.
        baseline: also compute the interpolation baseline in validation (cheap).

    ``forward_loss`` returns the MSE over hidden positions; ``outputs["count"]`` is the number
    of samples with at least one hidden, counted position; ``outputs["excluded"]`` the samples
    with nothing to reconstruct (fewer than two valid dates, or all hidden pixels cloudy).
    Validation metrics: ``mse``, ``mae``, ``baseline_mse``, ``baseline_mae``, ``skill``
    (``1 - mse / baseline_mse``: above 0 means the model beats interpolation).
    """

    name = "pretrain"
    default_monitor = "val_loss"

    def __init__(self, seed: int = 0, baseline: bool = True):
        self.seed = int(seed)
        self.baseline = baseline
        self._generator: torch.Generator | None = None

    def _eval_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        return self._generator

    def forward_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                     ) -> tuple[torch.Tensor, dict[str, Any]]:
        base = _unwrap(model)
        x, mask = batch["sequence"], batch["mask"].bool()
        generator = None if model.training else self._eval_generator(x.device)
        kwargs: dict[str, Any] = {"doy": batch.get("doy"), "generator": generator}
        for key in ("pixel_mask", "dates"):
            if key in batch:
                kwargs[key] = batch[key]
        out = model(x, mask, **kwargs)
        weight = out["weight"]
        counted = weight.reshape(weight.shape[0], -1).any(dim=1)  # (B,) samples with a target
        outputs: dict[str, Any] = {
            "count": int(counted.sum()), "excluded": int((~counted).sum()),
            "pred": out["pred"].detach(), "target": out["target"], "weight": weight,
        }
        if not model.training and self.baseline:
            with torch.no_grad():
                outputs["baseline"] = base.baseline(x, mask, out["hidden"], date_positions(batch))
        return out["loss"], outputs

    def make_metrics(self, model: nn.Module | None = None) -> ReconstructionMetrics:
        self._generator = None  # every validation pass hides the same dates
        return ReconstructionMetrics()

    def update_metrics(self, metrics: ReconstructionMetrics, outputs: dict[str, Any]) -> None:
        metrics.update(outputs["pred"], outputs["target"], outputs["weight"],
                       outputs.get("baseline"))

    def compute_metrics(self, metrics: ReconstructionMetrics) -> dict[str, float]:
        return metrics.compute()


@torch.no_grad()
def evaluate_reconstruction(model: nn.Module, loader: Any, seed: int = 0,
                            device: str | torch.device = "cpu") -> dict[str, float]:
    """Reconstruction error of a pre-training model on held-out data, with the interpolation
    baseline on the same hidden positions (same hiding draws for a given ``seed``)."""
    from tqdm.auto import tqdm

    task = ReconstructionTask(seed=seed)
    metrics = task.make_metrics(model)
    was_training = model.training
    model.eval()
    for batch in tqdm(loader, desc="reconstruction", leave=False, disable=None):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        _, outputs = task.forward_loss(model, batch)
        task.update_metrics(metrics, outputs)
    model.train(was_training)
    return task.compute_metrics(metrics)


# ------------------------------------------------------------------------------ experiments
@dataclass
class PretrainSection:
    """Masked-date pre-training settings."""

    target: str = "center"  # "center" (centre pixel, all bands) or "patch" (every pixel)
    hide_ratio: float = 0.3  # share of the valid dates hidden per sample
    baseline: bool = True  # report linear interpolation on the same hidden dates
    eval_seed: int = 0  # seed of the validation / test hiding draws


@dataclass
class PretrainExperimentConfig(ExperimentConfig):
    """An experiment config (model, data, optim, schedule, train, logging) plus ``pretrain``.

    ``data.source`` needs no labels; ``data.split`` ``"group"`` falls back to ``"random"``
    (with a printed note) when the source has no group ids. The validation split monitors
    training; the test split is held out and reported at the end (model vs baseline).
    """

    pretrain: PretrainSection = field(default_factory=PretrainSection)


def load_experiment_config(cls: type, path: str | Path | None = None,
                           overrides: list[str] | None = None) -> Any:
    """Defaults <- YAML ``path`` <- dotted ``overrides`` for any :class:`ExperimentConfig`
    subclass; unknown keys and wrong types are :class:`~sitsformer.training.config.ConfigError`
    naming the key."""
    import yaml

    from sitsformer.training.config import ConfigError, _merge, parse_overrides

    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config file {path}: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, "
                              f"found {type(loaded).__name__}")
        data = _merge(data, loaded)
    data = _merge(data, parse_overrides(overrides or []))
    try:
        return cls.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path else str(err)) from None


def load_unlabelled(cfg: ExperimentConfig) -> Any:
    """Read ``cfg.data.source`` without needing labels; returns a ``LoadedData`` whose
    ``labels`` are all zero when the source has none (they are never used for pre-training)."""
    import numpy as np

    from sitsformer.training.experiment import LoadedData, load_data

    d = cfg.data
    if d.source == "demo" or (d.source.endswith(".npz") and not d.options):
        return load_data(cfg)
    from sitsformer.data import open_source

    ds = open_source(d.source, **d.options)
    labels = getattr(ds, "labels", None)
    meta = dict(getattr(ds, "meta", {}) or {})
    return LoadedData(
        samples=ds, labels=np.zeros(len(ds), np.int64) if labels is None else np.asarray(labels),
        classes=list(ds.classes or []), bands=list(ds.bands), groups=getattr(ds, "groups", None),
        split=None, meta={"source": str(d.source), **{k: v for k, v in meta.items()
                                                      if isinstance(v, (str, int, float))}})


def prepare_splits(cfg: ExperimentConfig, data: Any, labelled: bool) -> dict[str, Any]:
    """Train/val/test indices; ``"group"`` without group ids becomes ``"random"`` for
    unlabelled pre-training (said on stdout)."""
    import numpy as np

    from sitsformer.training.experiment import split_indices

    how = cfg.data.split
    if how == "group" and data.groups is None and not labelled:
        print("note: the source has no group ids; pre-training uses a random split")
        how = "random"
    if how == "upstream" and data.split is None and not labelled:
        how = "random"
    if not labelled:
        data.labels = np.zeros(len(data.labels), np.int64)
    return split_indices(data, how, cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.seed)


def run_pretraining(cfg: PretrainExperimentConfig, resume: str | None = None,
                    run_dir: str | Path | None = None) -> dict[str, Any]:
    """Pre-train an encoder as configured (what ``sitsformer pretrain`` runs).

    Reads the source (labels not needed), splits it, scales and standardises with train-split
    statistics, wraps the configured SITS-Former in :class:`SITSFormerForPretraining`, fits it
    with :class:`~sitsformer.training.SITSFormerTrainer` and :class:`ReconstructionTask`
    (mixed precision, resume, tracking, DDP under ``torchrun``), then measures the best
    checkpoint's reconstruction error on the held-out test split against the interpolation
    baseline and writes ``test_metrics.json``.

    Returns:
        ``{"run_dir", "status", "best_checkpoint", "last_checkpoint", "history", "test",
        "data"}``; the checkpoints' ``model_config`` is the pre-training config (encoder
        config under ``"encoder"``), their ``data_meta`` the bands, scale and normalisation
        that fine-tuning reuses.
    """

    import numpy as np

    from sitsformer.models.pretrain import SITSFormerForPretraining
    from sitsformer.training.data_utils import make_loader
    from sitsformer.training.distributed import get_world_size
    from sitsformer.training.experiment import (
        PreparedDataset,
        band_statistics,
        build_model,
        build_optimization,
        fit_and_test,
        setup_run,
    )

    device, run_path = setup_run(cfg, resume, run_dir)

    data = load_unlabelled(cfg)
    splits = prepare_splits(cfg, data, labelled=False)
    if len(splits["train"]) == 0:
        raise ValueError("the pre-training split is empty")
    mean = std = None
    if cfg.data.normalize:
        mean, std = band_statistics(data.samples, splits["train"], cfg.data.scale)
    datasets = {k: PreparedDataset(data.samples, v, cfg.data.scale, mean, std)
                for k, v in splits.items()}
    n_all = len(data.labels)
    t_max = max(int(np.asarray(data.samples[int(i)]["mask"]).shape[0])
                for i in range(n_all)) if n_all <= 20000 else 366
    _, c, h, _ = datasets["train"][0]["sequence"].shape

    per_rank = cfg.data.batch_size // get_world_size()
    eval_bs = cfg.data.eval_batch_size or max(per_rank, 64)
    nw = cfg.data.num_workers
    train_loader = make_loader(datasets["train"], per_rank, seed=cfg.data.seed, num_workers=nw)
    val_loader = (make_loader(datasets["val"], eval_bs, train=False, num_workers=nw)
                  if len(datasets["val"]) else None)
    test_loader = (make_loader(datasets["test"], eval_bs, train=False, num_workers=nw)
                   if len(datasets["test"]) else None)

    encoder = build_model(cfg, c, cfg.model.num_classes or 2, h, t_max)
    if len(data.bands) == encoder.config.in_channels:
        encoder.config.bands = list(data.bands)  # checked again when fine-tuning
    p = cfg.pretrain
    model = SITSFormerForPretraining(encoder, target=p.target, hide_ratio=p.hide_ratio)
    optimizer, scheduler = build_optimization(cfg, model, len(train_loader))
    data_meta = {
        "source": data.meta.get("source", cfg.data.source), "bands": data.bands,
        "scale": cfg.data.scale,
        "normalization": {"mean": None if mean is None else mean.tolist(),
                          "std": None if std is None else std.tolist()},
        "dates": data.meta.get("dates", data.meta.get("time_axis", "")),
        "split_sizes": {k: int(len(v)) for k, v in splits.items()},
        "generated": cfg.data.source == "demo", "pretrain": {
            "target": p.target, "hide_ratio": p.hide_ratio},
    }
    task = ReconstructionTask(seed=p.eval_seed, baseline=p.baseline)
    return fit_and_test(cfg, model, optimizer, scheduler, run_path, device, data_meta,
                        train_loader, val_loader, test_loader, resume=resume, task=task)


__all__ = [
    "PretrainExperimentConfig",
    "PretrainSection",
    "ReconstructionMetrics",
    "ReconstructionTask",
    "date_positions",
    "evaluate_reconstruction",
    "interpolation_baseline",
    "load_experiment_config",
    "run_pretraining",
]
