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

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitsformer.models.pretrain import SITSFormerForPretraining, interpolation_baseline
from sitsformer.models.pretrained import unwrap_model
from sitsformer.training.config import PretrainExperimentConfig
from sitsformer.training.distributed import all_reduce_sum
from sitsformer.training.run import Recipe, build_model, run


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
        base = unwrap_model(model)
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
    from sitsformer._progress import progress_bar

    task = ReconstructionTask(seed=seed)
    metrics = task.make_metrics(model)
    was_training = model.training
    model.eval()
    for batch in progress_bar(loader, desc="reconstruction", leave=False):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        _, outputs = task.forward_loss(model, batch)
        task.update_metrics(metrics, outputs)
    model.train(was_training)
    return task.compute_metrics(metrics)


# ------------------------------------------------------------------------------ recipe
class PretrainRecipe(Recipe):
    """Pre-training: unlabelled data, the encoder wrapped in :class:`SITSFormerForPretraining`,
    the :class:`ReconstructionTask`; the input spec (bands, scale, statistics) is what
    fine-tuning reuses."""

    name = "pretrain"
    labelled = False

    def model(self, cfg: Any, dm: Any) -> nn.Module:
        p = cfg.pretrain
        return SITSFormerForPretraining(build_model(cfg.model, dm), target=p.target,
                                        hide_ratio=p.hide_ratio)

    def task(self, cfg: Any, dm: Any, model: nn.Module) -> ReconstructionTask:
        return ReconstructionTask(seed=cfg.pretrain.eval_seed, baseline=cfg.pretrain.baseline)

    def data_meta(self, cfg: Any, dm: Any) -> dict[str, Any]:
        return {**dm.run_info(), "pretrain": {"target": cfg.pretrain.target,
                                              "hide_ratio": cfg.pretrain.hide_ratio}}


def run_pretraining(cfg: PretrainExperimentConfig, resume: str | None = None,
                    run_dir: str | Path | None = None, allow_changes: bool = False
                    ) -> dict[str, Any]:
    """Pre-train an encoder as configured (what ``sitsformer pretrain`` runs).

    Reads the source (labels not needed), splits it, scales and standardises with train-split
    statistics, wraps the configured SITS-Former in :class:`SITSFormerForPretraining`, fits it
    with :class:`ReconstructionTask` (mixed precision, resume, tracking, DDP under
    ``torchrun``), then measures the best checkpoint's reconstruction error on the held-out
    test split against the interpolation baseline (``test_metrics.json``).

    Returns:
        the summary of :func:`sitsformer.training.run.run`; the checkpoints' ``model_config``
        is the pre-training config (encoder config under ``"encoder"``), their ``input_spec``
        the bands, scale and normalisation that fine-tuning reuses.
    """
    return run(cfg, PretrainRecipe(), resume=resume, run_dir=run_dir,
               allow_changes=allow_changes)


__all__ = [
    "PretrainRecipe",
    "ReconstructionMetrics",
    "ReconstructionTask",
    "date_positions",
    "evaluate_reconstruction",
    "interpolation_baseline",
    "run_pretraining",
]
