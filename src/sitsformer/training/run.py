"""One run recipe: ``run(config, recipe)`` is what ``train``, ``pretrain`` and ``finetune`` do.

Every run goes through the same steps, in this order:

1. join the process group under ``torchrun``, choose the device and threads, resolve the run
   folder, seed everything (:func:`setup_run`);
2. the data: a :class:`~sitsformer.data.DataModule` reads, splits, keeps the label budget,
   computes the train-split statistics and builds the :class:`~sitsformer.data.InputSpec`
   (``recipe.data``);
3. the model (``recipe.model``; by default :func:`build_model`: the config's ``model`` section
   completed with what the data needs, through the one settings merge
   :func:`~sitsformer.models.resolve_model_config`);
4. optimizer and scheduler from ``optim`` and ``schedule`` (:func:`build_optimization`), then
   the recipe's callbacks and task (``recipe.callbacks``, ``recipe.task``);
5. fit with :class:`~sitsformer.training.SITSFormerTrainer`, which stores the input spec and
   the data facts in every checkpoint, then score the best checkpoint on the test split
   (:func:`fit_and_test`).

A recipe is a small class (:class:`Recipe`) overriding the steps that differ:
:class:`~sitsformer.training.experiment.TrainRecipe`,
:class:`~sitsformer.training.pretrain.PretrainRecipe` and
:class:`~sitsformer.training.finetune.FinetuneRecipe`.
"""

from __future__ import annotations

import copy

import dataclasses
import datetime as _dt
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sitsformer.data import DataModule
from sitsformer.models import load_checkpoint, resolve_model_config
from sitsformer.models.sits_former import SITSFormer
from sitsformer.training.config import MODEL_SECTION_EXTRA, ExperimentConfig, save_config
from sitsformer.training.distributed import (
    broadcast_object,
    get_world_size,
    is_main_process,
    setup_distributed,
)
from sitsformer.training.losses import create_criterion
from sitsformer.training.optim import create_optimizer
from sitsformer.training.scheduler import create_scheduler
from sitsformer.training.tasks import ClassificationTask
from sitsformer.training.trainer import SITSFormerTrainer

__all__ = ["Recipe", "build_model", "build_optimization", "classification_task",
           "fit_and_test", "run", "seed_everything", "setup_run"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_run_dir(cfg: ExperimentConfig, resume: str | None) -> Path:
    if cfg.logging.name:
        path = Path(cfg.logging.run_dir) / cfg.logging.name
    elif resume:
        path = Path(resume).parent
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(cfg.logging.run_dir) / f"run-{stamp}"
    return Path(broadcast_object(str(path)))


def setup_run(cfg: ExperimentConfig, resume: str | None, run_dir: str | Path | None
              ) -> tuple[torch.device, Path]:
    """What every run does first: join the process group under torchrun, choose the device and
    threads, check the batch splits across processes, resolve the run folder and seed
    everything. Returns ``(device, run_path)``."""
    device = setup_distributed(timeout_s=cfg.train.dist_timeout_s)
    if cfg.train.device:
        device = torch.device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    world = get_world_size()
    if cfg.data.batch_size % world:
        raise ValueError(f"data.batch_size={cfg.data.batch_size} must be divisible by the "
                         f"number of processes ({world})")
    run_path = Path(run_dir) if run_dir is not None else resolve_run_dir(cfg, resume)
    seed_everything(cfg.train.seed)
    return device, run_path


def build_model(section: Any, dm: DataModule) -> SITSFormer:
    """The model of a config's ``model`` section for the data of ``dm``.

    Unset ``in_channels``, ``num_classes`` and ``img_size`` come from the data (a pixel source
    also gets ``patch_size=1``), ``max_seq_len`` grows to the longest series of the data, and
    the band names are recorded in the model config. Raises ``ValueError`` when a set
    ``in_channels`` differs from the data's band count.
    """
    settings = {k: v for k, v in dataclasses.asdict(section).items()
                if k not in MODEL_SECTION_EXTRA}
    spec = dm.spec
    assert spec is not None, "DataModule.setup() first"
    if settings["in_channels"] is not None and settings["in_channels"] != dm.num_bands:
        raise ValueError(f"model.in_channels={settings['in_channels']} but the data has "
                         f"{dm.num_bands} bands {dm.bands}")
    settings["in_channels"] = dm.num_bands
    settings["num_classes"] = settings["num_classes"] or dm.num_classes or 2
    if settings["img_size"] is None:
        settings["img_size"] = spec.sample_size
        if spec.sample_size == 1:
            settings["patch_size"] = settings["patch_size"] or 1
    if settings["bands"] is None:
        settings["bands"] = list(dm.bands)
    config = resolve_model_config(section.variant, **settings)
    if spec.max_t is not None and config.max_seq_len < spec.max_t:
        config = dataclasses.replace(config, max_seq_len=int(spec.max_t))
    model = SITSFormer(config)
    model.set_grad_checkpointing(section.grad_checkpointing)
    return model


def build_optimization(cfg: ExperimentConfig, model: Any, batches_per_epoch: int
                       ) -> tuple[Any, Any]:
    """The optimizer and scheduler of the config's ``optim`` and ``schedule`` sections (one
    scheduler step per update when ``schedule.per_step``)."""
    o, s = cfg.optim, cfg.schedule
    optimizer = create_optimizer(model, optimizer_type=o.type, lr=o.lr,
                                 weight_decay=o.weight_decay, betas=tuple(o.betas),
                                 momentum=o.momentum, layer_decay=o.layer_decay)
    updates = math.ceil(batches_per_epoch / cfg.train.accumulation_steps)
    scheduler = create_scheduler(optimizer, s.type, num_epochs=cfg.train.epochs,
                                 warmup_epochs=s.warmup_epochs, min_lr=s.min_lr,
                                 step_size=s.step_size, gamma=s.gamma,
                                 steps_per_epoch=updates if s.per_step else None,
                                 patience=s.patience, factor=s.factor)
    return optimizer, scheduler


def classification_task(cfg: ExperimentConfig, dm: DataModule) -> ClassificationTask:
    """Classification with the config's ``loss`` section (class weights from the train split)."""
    criterion = create_criterion(cfg.loss.type, num_classes=dm.num_classes,
                                 class_weights=cfg.loss.class_weights,
                                 weight_source=torch.as_tensor(dm.labels[dm.splits["train"]]),
                                 label_smoothing=cfg.loss.label_smoothing,
                                 focal_gamma=cfg.loss.focal_gamma)
    return ClassificationTask(criterion)


def fit_and_test(cfg: ExperimentConfig, model: Any, optimizer: Any, scheduler: Any,
                 run_path: Path, device: torch.device, dm: DataModule,
                 data_meta: dict[str, Any], task: Any, resume: str | None = None,
                 callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Write ``config.yaml`` and ``data_meta.json`` (rank 0), build the trainer from the
    config's ``train`` and ``logging`` sections, fit, then score the best checkpoint on the
    test split (``test_metrics.json``). Returns the run summary."""
    spec = dm.spec.to_dict()  # type: ignore[union-attr]
    if is_main_process():
        run_path.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_path / "config.yaml")
        (run_path / "data_meta.json").write_text(json.dumps(
            {"input_spec": spec, **data_meta}, indent=2, default=str))
    val_loader, test_loader = dm.val_loader(), dm.test_loader()
    lg = cfg.logging
    trainer = SITSFormerTrainer(
        model, optimizer, scheduler, task=task, device=device,
        num_epochs=cfg.train.epochs, precision=cfg.train.precision,
        grad_clip=cfg.train.grad_clip, accumulation_steps=cfg.train.accumulation_steps,
        early_stopping_patience=cfg.train.early_stopping_patience,
        monitor=cfg.train.monitor if val_loader is not None else "train_loss",
        run_dir=run_path, save_every=cfg.train.save_every, tensorboard=lg.tensorboard,
        wandb=lg.wandb, wandb_project=lg.wandb_project, plots=lg.plots, progress=lg.progress,
        config=cfg.to_dict(), data_meta=data_meta, input_spec=spec, callbacks=callbacks,
    )
    result = trainer.fit(dm.train_loader(), val_loader, resume_from=resume)
    out: dict[str, Any] = {
        "run_dir": str(run_path), "status": result["status"], "epochs": result["epochs"],
        "global_step": result["global_step"], "best_epoch": result["best_epoch"],
        "best_metric": result["best_metric"], "metric_name": result["metric_name"],
        "best_checkpoint": str(run_path / "best.pt"), "last_checkpoint": str(run_path / "last.pt"),
        "metrics_file": str(run_path / "metrics.csv"), "plots": str(run_path / "curves.png"),
        "history": result["history"], "data": data_meta, "input_spec": spec, "trainer": trainer,
    }
    if result["status"] != "interrupted" and test_loader is not None:
        best = run_path / "best.pt"
        if best.exists():
            trainer.model_without_ddp.load_state_dict(
                load_checkpoint(best, map_location=device)["model_state_dict"])
        test = trainer.evaluate(test_loader, prefix="test")
        trainer.log_test(test, result["best_epoch"])
        out["test"] = test
        if is_main_process():
            (run_path / "test_metrics.json").write_text(json.dumps(
                {"checkpoint": str(best), "epoch": result["best_epoch"], **test}, indent=2))
        out["test_metrics_file"] = str(run_path / "test_metrics.json")
    return out


class Recipe:
    """The steps of a run that differ between train, pre-train and fine-tune (see the module
    doc). Subclasses override what they need; the defaults are supervised classification."""

    name = "train"
    labelled = True  # does the data need labels?

    def data(self, cfg: ExperimentConfig) -> DataModule:
        return DataModule.from_config(cfg.data, labelled=self.labelled).setup()

    def model(self, cfg: ExperimentConfig, dm: DataModule) -> nn.Module:
        return build_model(cfg.model, dm)

    def task(self, cfg: ExperimentConfig, dm: DataModule, model: nn.Module) -> Any:
        return classification_task(cfg, dm)

    def callbacks(self, cfg: ExperimentConfig, model: nn.Module, resume: str | None,
                  ) -> list[Any]:
        """Called after the optimizer is built (so it holds every parameter)."""
        return []

    def data_meta(self, cfg: ExperimentConfig, dm: DataModule) -> dict[str, Any]:
        return dm.run_info()

    def finish(self, out: dict[str, Any]) -> dict[str, Any]:
        return out


def run(cfg: ExperimentConfig, recipe: Recipe, resume: str | None = None,
        run_dir: str | Path | None = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run ``recipe`` with ``cfg`` (see the module doc).

    Args:
        cfg: the resolved config (:func:`~sitsformer.training.config.load_config`).
        recipe: a :class:`Recipe`.
        resume: a checkpoint (usually ``<run>/last.pt``) to continue from.
        run_dir: the run folder (default: ``logging.run_dir/logging.name`` or a timestamp).
        callbacks: more trainer callbacks ``cb(trainer, event, info)`` (sweeps report and
            prune on ``"epoch_end"``).

    Returns:
        ``{"run_dir", "status", "best_checkpoint", "last_checkpoint", "metrics_file", "plots",
        "history", "data", "input_spec", "test", ...}``.
    """
    device, run_path = setup_run(cfg, resume, run_dir)
    dm = recipe.data(cfg)
    model = recipe.model(cfg, dm)
    plan = None
    if cfg.train.memory_budget_gb is not None:
        cfg, plan = apply_memory_budget(cfg, model, dm, device)
    optimizer, scheduler = build_optimization(cfg, model, len(dm.train_loader()))
    own = recipe.callbacks(cfg, model, resume)
    task = recipe.task(cfg, dm, model)
    out = fit_and_test(cfg, model, optimizer, scheduler, run_path, device, dm,
                       recipe.data_meta(cfg, dm), task, resume=resume,
                       callbacks=[*own, *callbacks])
    if plan is not None:
        out["memory_plan"] = plan.to_dict()
        if is_main_process():
            (run_path / "memory_plan.json").write_text(json.dumps(plan.to_dict(), indent=2))
    return recipe.finish(out)


def apply_memory_budget(cfg: ExperimentConfig, model: Any, dm: DataModule,
                        device: torch.device) -> tuple[ExperimentConfig, Any]:
    """Pick checkpointing and micro-batching for ``train.memory_budget_gb``
    (:func:`sitsformer.training.memory.plan_memory`, on this process's batch) and return a copy
    of ``cfg`` that states the plan (``data.batch_size``, ``train.accumulation_steps``,
    ``model.grad_checkpointing``; the budget itself cleared, so the saved ``config.yaml`` runs
    the same plan again), with the model and data module set to it."""
    from sitsformer.training.memory import plan_memory

    world = dm.batch_size // dm.per_process_batch()
    seq_len = int(dm.spec.max_t or model.config.max_seq_len)  # type: ignore[union-attr]
    plan = plan_memory(model, dm.per_process_batch(), cfg.train.memory_budget_gb, seq_len,
                       precision=cfg.train.precision, device=device)
    cfg = copy.deepcopy(cfg)
    cfg.train.memory_budget_gb = None
    cfg.train.accumulation_steps *= plan.accumulation
    cfg.data.batch_size = plan.micro_batch * world
    cfg.model.grad_checkpointing = plan.checkpointing
    dm.batch_size = cfg.data.batch_size
    model.set_grad_checkpointing(plan.checkpointing)
    return cfg, plan
