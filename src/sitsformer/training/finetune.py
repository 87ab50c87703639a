"""Fine-tuning a pre-trained SITS-Former encoder on a labelled task: the ``finetune`` recipe.

Loading the encoder exactly (the encoder filter) lives in :mod:`sitsformer.models.pretrained`
(:func:`~sitsformer.models.load_pretrained_encoder`, :func:`~sitsformer.models.build_finetune_model`);
this module holds what training adds:

* :func:`set_encoder_trainable` and :class:`FreezeEncoder` freeze the encoder for the first
  epochs so a random head does not wreck the pre-trained features; layer-wise learning-rate
  decay comes from ``create_optimizer(model, layer_decay=...)``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from torch import nn

from sitsformer.data import DataModule, InputSpec
from sitsformer.models import (
    PretrainedMismatchError,
    SITSFormer,
    check_encoder_compatible,
    load_checkpoint,
    load_pretrained_encoder,
    pretrained_encoder_state,
    resolve_model_config,
    unwrap_model,
)
from sitsformer.models.pretrained import HEAD_PREFIX
from sitsformer.training.config import MODEL_SECTION_EXTRA, FinetuneExperimentConfig
from sitsformer.training.run import Recipe, build_model, run


def encoder_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every parameter except the classification head's."""
    return [(n, p) for n, p in unwrap_model(model).named_parameters() if not n.startswith(HEAD_PREFIX)]


def set_encoder_trainable(model: nn.Module, trainable: bool) -> int:
    """Freeze (``False``) or unfreeze the encoder; the head always trains.

    Frozen parameters get no gradient, so optimizers (AdamW included) leave them exactly as they
    are. Returns the number of parameters whose state changed.
    """
    changed = 0
    for _, p in encoder_parameters(model):
        if p.requires_grad != trainable:
            p.requires_grad_(trainable)
            changed += 1
    return changed


class FreezeEncoder:
    """Keep the encoder frozen for the first ``epochs`` epochs, then train everything.

    A trainer callback (``callbacks=[FreezeEncoder(n)]``). Create the optimizer first (so it
    holds the encoder's parameters: ``create_optimizer`` leaves out frozen ones), then call
    :meth:`apply` with the number of completed epochs, before building the trainer (0 for a new
    run, the checkpoint's epoch when resuming): DistributedDataParallel only synchronises the
    parameters that need gradients when it is built, so when the encoder is unfrozen the
    callback wraps the model again. While frozen only the head learns; frozen parameters get
    no gradient, so the optimizer (weight decay included) leaves them exactly as they are.

    Args:
        epochs: number of epochs with a frozen encoder (0 = never frozen).
    """

    def __init__(self, epochs: int):
        if epochs < 0:
            raise ValueError(f"freeze epochs must be >= 0, got {epochs}")
        self.epochs = int(epochs)

    def apply(self, model: nn.Module, completed_epochs: int = 0) -> bool:
        """Freeze or unfreeze for the epoch after ``completed_epochs``; returns True if the
        encoder is now frozen."""
        frozen = completed_epochs < self.epochs
        set_encoder_trainable(model, not frozen)
        return frozen

    def __call__(self, trainer: Any, event: str, info: dict[str, Any]) -> None:
        if event != "epoch_end":
            return
        if int(info["epoch"]) == self.epochs and self.epochs > 0:
            if set_encoder_trainable(trainer.model_without_ddp, True):
                in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
                left_out = [n for n, p in encoder_parameters(trainer.model_without_ddp)
                            if id(p) not in in_optimizer]
                if left_out:
                    raise RuntimeError(
                        f"FreezeEncoder: {len(left_out)} encoder parameter(s) are not in the "
                        f"optimizer (e.g. {left_out[:3]}), so unfreezing would not train them; "
                        "create the optimizer before FreezeEncoder.apply()")
                from torch.nn.parallel import DistributedDataParallel

                if isinstance(trainer.model, DistributedDataParallel):
                    device = trainer.device
                    trainer.model = DistributedDataParallel(
                        trainer.model_without_ddp,
                        device_ids=[device.index] if device.type == "cuda" else None)


# ------------------------------------------------------------------------------ recipe
class FinetuneRecipe(Recipe):
    """Fine-tuning: the data prepared with the pre-training input spec, a classifier built
    from the pre-trained encoder's configuration (exact weights, fresh head), frozen for the
    first ``finetune.freeze_epochs``. Without a checkpoint: the same recipe from scratch."""

    name = "finetune"

    def __init__(self, pretrained: str | os.PathLike[str] | None):
        self.pretrained = None if pretrained is None else str(pretrained)
        self.ckpt = load_checkpoint(pretrained) if pretrained is not None else None
        self.report: dict[str, Any] | None = None

    def data(self, cfg: Any) -> DataModule:
        dm = DataModule.from_config(cfg.data, label_fraction=cfg.finetune.label_fraction).read()
        if self.ckpt is None:
            return dm.prepare()
        pre = InputSpec.from_checkpoint(self.ckpt)
        if list(pre.bands) != list(dm.bands):
            raise PretrainedMismatchError(
                f"{self.pretrained}: band set mismatch: pre-trained on {list(pre.bands)}, "
                f"data.source {cfg.data.source!r} has {list(dm.bands)}")
        return dm.prepare(pre if cfg.finetune.use_pretrained_normalization else None)

    def model(self, cfg: Any, dm: DataModule) -> nn.Module:
        if self.ckpt is None:
            return build_model(cfg.model, dm)
        enc_config, _, _ = pretrained_encoder_state(self.ckpt, self.pretrained or "checkpoint")
        given = {k: v for k, v in dataclasses.asdict(cfg.model).items()
                 if k not in (*MODEL_SECTION_EXTRA, "num_classes") and v is not None}
        check_encoder_compatible({**enc_config, **given}, enc_config,
                                 f"{self.pretrained} (model.* settings)")
        config = resolve_model_config({**enc_config, **given}, num_classes=dm.num_classes)
        if dm.spec.max_t is not None and config.max_seq_len < dm.spec.max_t:  # type: ignore[union-attr]
            config = dataclasses.replace(config, max_seq_len=int(dm.spec.max_t))  # type: ignore[union-attr]
        model = SITSFormer(config)
        self.report = load_pretrained_encoder(model, self.ckpt)
        self.report["checkpoint"] = self.pretrained
        model.set_grad_checkpointing(cfg.model.grad_checkpointing)
        return model

    def callbacks(self, cfg: Any, model: nn.Module, resume: str | None) -> list[Any]:
        freeze = FreezeEncoder(cfg.finetune.freeze_epochs)  # after the optimizer: it holds them all
        freeze.apply(model, int(load_checkpoint(resume)["epoch"]) if resume else 0)
        return [freeze]

    def data_meta(self, cfg: Any, dm: DataModule) -> dict[str, Any]:
        return {**dm.run_info(), "pretrained": self.pretrained}

    def finish(self, out: dict[str, Any]) -> dict[str, Any]:
        out["pretrained"] = self.report
        return out


def run_finetuning(cfg: FinetuneExperimentConfig, pretrained: str | os.PathLike[str] | None,
                   resume: str | None = None, run_dir: str | os.PathLike[str] | None = None,
                   allow_changes: bool = False) -> dict[str, Any]:
    """Fine-tune a pre-trained encoder (or, with ``pretrained=None``, train from scratch with
    the very same recipe, the fair comparison) on the labelled source of ``cfg``.

    The data are split as configured (grouped by default), a ``finetune.label_fraction``
    share of the training labels is kept, inputs are scaled and standardised with the
    pre-training input spec (``finetune.use_pretrained_normalization``), the encoder is loaded
    with :func:`~sitsformer.models.load_pretrained_encoder` (exact key check, fresh head),
    frozen for ``finetune.freeze_epochs`` epochs, and trained with ``optim.layer_decay``. The
    best checkpoint is evaluated on the test split (``test_metrics.json``).

    Returns:
        the summary of :func:`sitsformer.training.run.run` plus ``"pretrained"`` (the loading
        report, None from scratch).
    """
    return run(cfg, FinetuneRecipe(pretrained), resume=resume, run_dir=run_dir,
               allow_changes=allow_changes)


__all__ = [
    "FinetuneRecipe",
    "FreezeEncoder",
    "encoder_parameters",
    "run_finetuning",
    "set_encoder_trainable",
]
