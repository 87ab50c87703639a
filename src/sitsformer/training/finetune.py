"""Fine-tuning a pre-trained SITS-Former encoder on a labelled task.

* :func:`load_pretrained_encoder` copies the encoder weights of a checkpoint (a pre-training
  checkpoint from ``sitsformer pretrain`` or a classifier checkpoint) into a model, with an exact
  check: the only keys the model may miss are its classification head's, the checkpoint may
  carry nothing the model does not know except its own head and the pre-training parts (mask
  token, reconstruction decoder), and the band set, date encoding and architecture must match.
  The model then gets a fresh head for its own classes.
* :func:`build_finetune_model` creates that model from the checkpoint's own configuration.
* :func:`set_encoder_trainable` and :class:`FreezeEncoder` freeze the encoder for the first
  epochs so a random head does not wreck the pre-trained features; layer-wise learning-rate
  decay comes from ``create_optimizer(model, layer_decay=...)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from sitsformer.models import SITSFormer, create_sits_former
from sitsformer.training.checkpoint import load_checkpoint
from sitsformer.training.config import ExperimentConfig

HEAD_PREFIX = "head."
PRETRAIN_ONLY = ("mask_token", "decoder.")  # parts of SITSFormerForPretraining, not the encoder

# Settings that change the encoder's weights or the meaning of its inputs: they must match.
MATCHED_SETTINGS = ("in_channels", "bands", "img_size", "patch_size", "stem", "embed_dim",
                    "num_layers", "num_heads", "mlp_ratio", "date_encoding", "reference_date")


class PretrainedMismatchError(ValueError):
    """A pre-trained checkpoint does not fit the model it is loaded into (names what differs)."""


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def pretrained_encoder_state(ckpt: dict[str, Any], where: str = "checkpoint",
                             ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Split a checkpoint into the encoder's config, its weights, and the keys left out.

    Args:
        ckpt: a checkpoint dict (``model_config``, ``model_state_dict``).
        where: the file name, for error messages.

    Returns:
        ``(encoder_config, encoder_state, dropped)``: the SITSFormer config dict, the weights
        named as in a :class:`SITSFormer`, and the checkpoint keys deliberately not loaded
        (its classification head, the mask token and the reconstruction decoder).
    """
    config = dict(ckpt["model_config"])
    state = ckpt["model_state_dict"]
    dropped: list[str] = []
    out: dict[str, Any] = {}
    if "encoder" in config:  # a SITSFormerForPretraining checkpoint
        enc_config = dict(config["encoder"])
        for key, value in state.items():
            if key.startswith("encoder."):
                name = key[len("encoder."):]
                if name.startswith(HEAD_PREFIX):
                    dropped.append(key)
                else:
                    out[name] = value
            elif key.startswith(PRETRAIN_ONLY):
                dropped.append(key)
            else:
                raise PretrainedMismatchError(
                    f"{where}: unexpected key {key!r} in a pre-training checkpoint "
                    f"(expected 'encoder.*', 'mask_token' or 'decoder.*')"
                )
    else:
        enc_config = config
        for key, value in state.items():
            (dropped.append(key) if key.startswith(HEAD_PREFIX) else out.__setitem__(key, value))
    return enc_config, out, dropped


def check_compatible(model_config: dict[str, Any], pretrained_config: dict[str, Any],
                     where: str = "checkpoint") -> None:
    """Raise :class:`PretrainedMismatchError` listing every setting that differs.

    The band set (names and count), the date encoding (kind and reference date) and the
    architecture (image and patch size, stem, width, depth, heads) must be the same.
    """
    problems = []
    for key in MATCHED_SETTINGS:
        mine, theirs = model_config.get(key), pretrained_config.get(key)
        if key == "bands" and (mine is None or theirs is None):
            continue  # band names unknown on one side: the band count is still checked
        if mine != theirs:
            label = {"bands": "band set", "in_channels": "band count",
                     "date_encoding": "date encoding",
                     "reference_date": "date encoding reference date"}.get(key, key)
            name = label if label == key else f"{label} ({key})"
            problems.append(f"{name}: the model has {mine!r}, "
                            f"the pre-trained encoder has {theirs!r}")
    if problems:
        raise PretrainedMismatchError(
            f"{where} does not match the model:\n  " + "\n  ".join(problems)
            + "\nBuild the model with the pre-trained settings "
            "(build_finetune_model does) and prepare the data the same way."
        )


def load_pretrained_encoder(model: SITSFormer, ckpt_path: str | os.PathLike[str] | dict[str, Any],
                            reset_head: bool = True) -> dict[str, Any]:
    """Load the encoder weights of a checkpoint into ``model``, exactly.

    Args:
        model: the :class:`SITSFormer` to fine-tune (its ``num_classes`` is the new task's).
        ckpt_path: a checkpoint file (or an already loaded checkpoint dict) from pre-training or
            from a trained classifier.
        reset_head: give the model a freshly initialised head for its classes (default).

    Returns:
        A report: ``loaded`` (keys copied), ``missing`` (the head keys the checkpoint did not
        provide), ``dropped`` (checkpoint keys not used: mask token, decoder, old head),
        ``data_meta`` (how the pre-training data was prepared: bands, normalisation ...) and
        ``task`` of the checkpoint.

    Raises:
        PretrainedMismatchError: band set, date encoding or architecture differ; or a key other
            than the head's is missing, or an unexpected key is present (all listed).
    """
    if isinstance(ckpt_path, dict):
        ckpt, where = ckpt_path, "checkpoint"
    else:
        ckpt, where = load_checkpoint(ckpt_path), str(ckpt_path)
    base = _unwrap(model)
    enc_config, state, dropped = pretrained_encoder_state(ckpt, where)
    check_compatible(base.config.to_dict(), enc_config, where)

    own = base.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_missing = [k for k in missing if not k.startswith(HEAD_PREFIX)]
    if bad_missing or unexpected:
        raise PretrainedMismatchError(
            f"{where}: encoder weights do not match the model exactly; "
            f"missing (other than the head): {bad_missing}; unexpected: {unexpected}"
        )
    shapes = [f"{k}: model {tuple(own[k].shape)} vs checkpoint {tuple(v.shape)}"
              for k, v in state.items() if tuple(own[k].shape) != tuple(v.shape)]
    if shapes:
        raise PretrainedMismatchError(f"{where}: weight shapes differ: " + "; ".join(shapes))
    result = base.load_state_dict(state, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    if reset_head:
        base.reset_classifier(base.config.num_classes)
    return {"loaded": sorted(state), "missing": missing, "dropped": sorted(dropped),
            "data_meta": dict(ckpt.get("data_meta") or {}), "task": ckpt.get("task"),
            "checkpoint": where}


def build_finetune_model(ckpt_path: str | os.PathLike[str], num_classes: int,
                         **overrides: Any) -> tuple[SITSFormer, dict[str, Any]]:
    """Create a classifier from a pre-trained checkpoint's encoder configuration.

    Args:
        ckpt_path: checkpoint file from ``sitsformer pretrain`` (or a classifier checkpoint).
        num_classes: classes of the new task (the head is fresh).
        **overrides: settings that do not change the weights (``dropout``, ``attn_dropout``,
            ``pool``, ``max_seq_len``); others must equal the pre-trained ones.

    Returns:
        ``(model, report)`` as from :func:`load_pretrained_encoder`.
    """
    ckpt = load_checkpoint(ckpt_path)
    enc_config, _, _ = pretrained_encoder_state(ckpt, str(ckpt_path))
    config = {**enc_config, **{k: v for k, v in overrides.items() if v is not None},
              "num_classes": num_classes}
    model = create_sits_former(config)
    report = load_pretrained_encoder(model, {**ckpt}, reset_head=True)
    report["checkpoint"] = str(ckpt_path)
    return model, report


def encoder_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every parameter except the classification head's."""
    return [(n, p) for n, p in _unwrap(model).named_parameters() if not n.startswith(HEAD_PREFIX)]


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


# ------------------------------------------------------------------------------ experiments
@dataclass
class FinetuneSection:
    """Fine-tuning settings (layer-wise LR decay is ``optim.layer_decay``)."""

    freeze_epochs: int = 0  # epochs with a frozen encoder (only the new head learns)
    label_fraction: float = 1.0  # share of the training labels used (per class, >= 1 each)
    use_pretrained_normalization: bool = True  # scale/standardise as in pre-training


@dataclass
class FinetuneExperimentConfig(ExperimentConfig):
    """An experiment config plus ``finetune``. ``model.*`` settings that change weights
    (width, depth, bands, date encoding ...) come from the pre-trained checkpoint; a value
    that differs is an error."""

    finetune: FinetuneSection = field(default_factory=FinetuneSection)


def label_subset(labels: np.ndarray, indices: np.ndarray, fraction: float, seed: int,
                 ) -> np.ndarray:
    """A per-class random share ``fraction`` of ``indices`` (at least one sample per class
    present), sorted. ``fraction >= 1`` returns ``indices`` unchanged."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"finetune.label_fraction must be in (0, 1], got {fraction}")
    if fraction >= 1.0:
        return np.asarray(indices)
    rng = np.random.default_rng(seed)
    keep = []
    lab = labels[indices]
    for c in np.unique(lab):
        sel = np.asarray(indices)[lab == c]
        k = max(1, int(round(fraction * len(sel))))
        keep.append(rng.choice(sel, size=k, replace=False))
    return np.sort(np.concatenate(keep))


def run_finetuning(cfg: FinetuneExperimentConfig, pretrained: str | os.PathLike[str] | None,
                   resume: str | None = None, run_dir: str | os.PathLike[str] | None = None,
                   ) -> dict[str, Any]:
    """Fine-tune a pre-trained encoder (or, with ``pretrained=None``, train from scratch with
    the very same recipe, the fair comparison) on the labelled source of ``cfg``.

    The data are split as configured (grouped by default), a ``finetune.label_fraction``
    share of the training labels is kept, inputs are scaled and standardised with the
    pre-training statistics (``finetune.use_pretrained_normalization``), the encoder is loaded
    with :func:`load_pretrained_encoder` (exact key check, fresh head), frozen for
    ``finetune.freeze_epochs`` epochs, and trained with ``optim.layer_decay``. The best
    checkpoint is evaluated on the test split (``test_metrics.json``).

    Returns:
        ``{"run_dir", "status", "best_checkpoint", "history", "test", "data", "pretrained"}``.
    """

    import torch

    from sitsformer.training.data_utils import make_loader
    from sitsformer.training.distributed import get_world_size
    from sitsformer.training.experiment import (
        PreparedDataset,
        band_statistics,
        build_model,
        build_optimization,
        fit_and_test,
        load_data,
        setup_run,
        split_indices,
    )
    from sitsformer.training.losses import create_criterion

    device, run_path = setup_run(cfg, resume, run_dir)

    data = load_data(cfg)
    splits = split_indices(data, cfg.data.split, cfg.data.val_fraction, cfg.data.test_fraction,
                           cfg.data.seed)
    full_train = len(splits["train"])
    splits["train"] = label_subset(data.labels, splits["train"], cfg.finetune.label_fraction,
                                   cfg.data.seed)
    if len(splits["train"]) == 0:
        raise ValueError("the train split is empty")

    ckpt = load_checkpoint(pretrained) if pretrained is not None else None
    pre_meta = dict((ckpt or {}).get("data_meta") or {})
    if ckpt is not None and pre_meta.get("bands") and list(pre_meta["bands"]) != list(data.bands):
        raise PretrainedMismatchError(
            f"{pretrained}: band set mismatch: pre-trained on {list(pre_meta['bands'])}, "
            f"data.source {cfg.data.source!r} has {list(data.bands)}")
    scale, mean, std = cfg.data.scale, None, None
    norm = pre_meta.get("normalization") or {}
    if ckpt is not None and cfg.finetune.use_pretrained_normalization and "scale" in pre_meta:
        scale = float(pre_meta["scale"])
        if norm.get("mean") is not None:
            mean = np.asarray(norm["mean"], np.float32)
            std = np.asarray(norm["std"], np.float32)
    elif cfg.data.normalize:
        mean, std = band_statistics(data.samples, splits["train"], scale)
    datasets = {k: PreparedDataset(data.samples, v, scale, mean, std) for k, v in splits.items()}
    _, c, h, _ = datasets["train"][0]["sequence"].shape
    n_all = len(data.labels)
    t_max = max(int(np.asarray(data.samples[int(i)]["mask"]).shape[0])
                for i in range(n_all)) if n_all <= 20000 else 366
    num_classes = len(data.classes)

    per_rank = cfg.data.batch_size // get_world_size()
    eval_bs = cfg.data.eval_batch_size or max(per_rank, 64)
    nw = cfg.data.num_workers
    train_loader = make_loader(datasets["train"], per_rank, seed=cfg.data.seed, num_workers=nw)
    val_loader = (make_loader(datasets["val"], eval_bs, train=False, num_workers=nw)
                  if len(datasets["val"]) else None)
    test_loader = (make_loader(datasets["test"], eval_bs, train=False, num_workers=nw)
                   if len(datasets["test"]) else None)

    report: dict[str, Any] | None = None
    if ckpt is not None:
        enc_config, _, _ = pretrained_encoder_state(ckpt, str(pretrained))
        given = {k: v for k, v in vars(cfg.model).items()
                 if k not in ("variant", "grad_checkpointing", "num_classes") and v is not None}
        check_compatible({**enc_config, **given}, enc_config, f"{pretrained} (model.* settings)")
        config = {**enc_config, **given, "num_classes": num_classes}
        config["max_seq_len"] = max(int(config.get("max_seq_len") or 0), t_max)
        model = create_sits_former(config)
        report = load_pretrained_encoder(model, ckpt)
        report["checkpoint"] = str(pretrained)
        model.set_grad_checkpointing(cfg.model.grad_checkpointing)
    else:
        model = build_model(cfg, c, num_classes, h, t_max)
        if len(data.bands) == model.config.in_channels:
            model.config.bands = list(data.bands)
    optimizer, scheduler = build_optimization(cfg, model, len(train_loader))
    freeze = FreezeEncoder(cfg.finetune.freeze_epochs)  # after the optimizer: it holds them all
    done = int(load_checkpoint(resume)["epoch"]) if resume else 0
    freeze.apply(model, done)
    criterion = create_criterion(cfg.loss.type, num_classes=num_classes,
                                 class_weights=cfg.loss.class_weights,
                                 weight_source=torch.as_tensor(data.labels[splits["train"]]),
                                 label_smoothing=cfg.loss.label_smoothing,
                                 focal_gamma=cfg.loss.focal_gamma)
    data_meta = {
        "source": data.meta.get("source", cfg.data.source), "bands": data.bands,
        "classes": data.classes, "scale": scale,
        "normalization": {"mean": None if mean is None else np.asarray(mean).tolist(),
                          "std": None if std is None else np.asarray(std).tolist()},
        "dates": data.meta.get("dates", ""), "split": cfg.data.split,
        "split_sizes": {k: int(len(v)) for k, v in splits.items()},
        "label_fraction": cfg.finetune.label_fraction, "train_pool_size": full_train,
        "pretrained": None if pretrained is None else str(pretrained),
        "generated": cfg.data.source == "demo",
    }
    out = fit_and_test(cfg, model, optimizer, scheduler, run_path, device, data_meta,
                       train_loader, val_loader, test_loader, resume=resume,
                       criterion=criterion, callbacks=[freeze])
    out["pretrained"] = report
    return out


__all__ = [
    "FinetuneExperimentConfig",
    "FinetuneSection",
    "FreezeEncoder",
    "PretrainedMismatchError",
    "build_finetune_model",
    "check_compatible",
    "encoder_parameters",
    "label_subset",
    "load_pretrained_encoder",
    "pretrained_encoder_state",
    "run_finetuning",
    "set_encoder_trainable",
]
