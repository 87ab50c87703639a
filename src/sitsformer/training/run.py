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

Resuming (``resume=RUN/last.pt``) first compares the resolved config with the one stored in
the checkpoint (:func:`check_resume`): a change to the model or the data is refused with the
differing keys; a larger ``train.epochs`` continues the run on the schedule of the new length;
any other change (``optim.lr`` ...) needs ``allow_changes=True`` and is recorded in the run
folder's ``resume_changes.json``.

A recipe is a small class (:class:`Recipe`) overriding the steps that differ:
:class:`~sitsformer.training.experiment.TrainRecipe`,
:class:`~sitsformer.training.pretrain.PretrainRecipe` and
:class:`~sitsformer.training.finetune.FinetuneRecipe`.
"""

from __future__ import annotations

import contextlib
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
from sitsformer.models.factory import build_model as build_architecture
from sitsformer.training.config import (
    MODEL_SECTION_EXTRA,
    ExperimentConfig,
    flatten_keys,
    save_config,
    with_small_set,
)
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

__all__ = ["Recipe", "ResumeConfigError", "build_model", "build_optimization",
           "check_resume", "classification_task", "fit_and_test", "resolve_size_rules", "run",
           "seed_everything", "setup_run"]


# ------------------------------------------------------------------------------ resume checks
class ResumeConfigError(ValueError):
    """The config asked for differs from the checkpoint's in a way resume cannot honour."""


# What a resumed run may change. The model and the data are fixed (weights and splits depend
# on them); these keys of other sections are fixed too, for the same reason.
FIXED_SECTIONS = ("model", "data")
FIXED_KEYS = ("pretrain.target", "finetune.label_fraction",
              "finetune.use_pretrained_normalization")
# No effect on the numbers: changed freely (and recorded).
NO_EFFECT_KEYS = ("model.grad_checkpointing", "data.num_workers", "data.eval_batch_size",
                  "train.device", "train.threads", "train.dist_timeout_s")
NO_EFFECT_SECTIONS = ("logging",)
EXTENDS_KEYS = ("train.epochs",)  # the schedule is re-spanned to the new length


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "options" and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _same(key: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if key == "data.source" and isinstance(old, str) and isinstance(new, str):
        a, b = Path(old), Path(new)
        return a.exists() and b.exists() and a.resolve() == b.resolve()
    return False


def _kind(key: str) -> str:
    section = key.split(".", 1)[0]
    if key in NO_EFFECT_KEYS or section in NO_EFFECT_SECTIONS:
        return "no effect"
    if section in FIXED_SECTIONS or key in FIXED_KEYS:
        return "fixed"
    if key in EXTENDS_KEYS:
        return "extends"
    return "needs --allow-changes"


def check_resume(cfg: ExperimentConfig, ckpt: dict[str, Any], path: str | Path,
                 allow_changes: bool = False) -> dict[str, dict[str, Any]]:
    """Compare ``cfg`` with the config stored in the checkpoint ``ckpt`` (read from ``path``).

    Returns the settings that differ, ``{key: {"checkpoint": old, "now": new, "kind": ...}}``
    (kind ``"no effect"``, ``"extends"`` or ``"needs --allow-changes"``). A checkpoint without
    a stored config (written by the trainer's Python API) is not compared.

    Raises:
        ResumeConfigError: a model or data setting differs (always refused), or another
            setting differs and ``allow_changes`` is False; the message lists every key.
    """
    saved = ckpt.get("config") or {}
    if not saved:
        return {}
    old, new = _flat(saved), _flat(cfg.to_dict())
    changes = {k: {"checkpoint": old[k], "now": new[k], "kind": _kind(k)}
               for k in sorted(set(old) & set(new)) if not _same(k, old[k], new[k])}

    def listed(kind: str) -> str:
        return "; ".join(f"{k}: {c['checkpoint']!r} in the checkpoint, {c['now']!r} now"
                         for k, c in changes.items() if c["kind"] == kind)

    if any(c["kind"] == "fixed" for c in changes.values()):
        raise ResumeConfigError(
            f"cannot resume {path}: the model and the data must stay as they were, but "
            f"{listed('fixed')}; start a new run (another --output) to change them")
    if any(c["kind"] == "needs --allow-changes" for c in changes.values()) and not allow_changes:
        raise ResumeConfigError(
            f"cannot resume {path} with different settings: {listed('needs --allow-changes')}; "
            "pass --allow-changes (allow_changes=True) to continue with them (they are "
            "recorded in resume_changes.json), or leave them as they were")
    return changes


def record_resume(run_path: Path, path: str | Path, ckpt: dict[str, Any],
                  changes: dict[str, dict[str, Any]]) -> None:
    """Append this resume and its changes to ``run_path/resume_changes.json`` and print them."""
    if not changes:
        return
    log = run_path / "resume_changes.json"
    events = json.loads(log.read_text()) if log.exists() else []
    events.append({"resumed_from": str(path), "epoch": int(ckpt.get("epoch", 0)),
                   "global_step": int(ckpt.get("global_step", 0)),
                   "time": _dt.datetime.now().isoformat(timespec="seconds"),
                   "changes": changes})
    run_path.mkdir(parents=True, exist_ok=True)
    tmp = log.with_name(f".{log.name}.tmp")
    tmp.write_text(json.dumps(events, indent=2, default=str))
    tmp.replace(log)
    for key, c in changes.items():
        print(f"resume: {key} changed from {c['checkpoint']!r} to {c['now']!r} ({c['kind']}); "
              f"recorded in {log}", flush=True)


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


def build_model(section: Any, dm: DataModule) -> nn.Module:
    """The model of a config's ``model`` section for the data of ``dm``: a SITSFormer, or the
    baseline the variant's ``arch`` names (``model.variant=tempcnn`` / ``ltae``).

    Unset ``in_channels``, ``num_classes`` and ``img_size`` come from the data (a pixel source
    also gets ``patch_size=1``), ``max_seq_len`` grows to the longest series of the data (a
    baseline without a set ``max_seq_len`` takes exactly that length), and the band names are
    recorded in the model config. Raises ``ValueError`` when a set
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
    fit_to_data = config.arch != "sitsformer" and section.max_seq_len is None
    if spec.max_t is not None and (config.max_seq_len < spec.max_t or fit_to_data):
        # a baseline's length is the data's unless set: TempCNN's date grid (and with it its
        # dense layer) is max_seq_len long
        config = dataclasses.replace(config, max_seq_len=int(spec.max_t))
    model = build_architecture(config)
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
        meta = run_path / "data_meta.json"
        tmp = meta.with_name(f".{meta.name}.tmp")  # replaced whole: a kill leaves old or new
        tmp.write_text(json.dumps({"input_spec": spec, **data_meta}, indent=2, default=str))
        tmp.replace(meta)
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
        ema_decay=cfg.train.ema_decay, checkpoint_interval_s=cfg.train.checkpoint_interval_s,
        compile_backend=cfg.train.compile,
    )
    result = trainer.fit(dm.train_loader(), val_loader, resume_from=resume)
    out: dict[str, Any] = {
        "run_dir": str(run_path), "status": result["status"], "epochs": result["epochs"],
        "stop_signal": result.get("stop_signal"),
        "global_step": result["global_step"], "best_epoch": result["best_epoch"],
        "best_metric": result["best_metric"], "metric_name": result["metric_name"],
        "best_checkpoint": str(run_path / "best.pt"), "last_checkpoint": str(run_path / "last.pt"),
        "metrics_file": str(run_path / "metrics.csv"), "plots": str(run_path / "curves.png"),
        "history": result["history"], "data": data_meta, "input_spec": spec, "trainer": trainer,
    }
    if cfg.train.test_checkpoint not in ("best", "last"):
        raise ValueError(f"train.test_checkpoint must be 'best' or 'last', got "
                         f"{cfg.train.test_checkpoint!r}")
    if result["status"] != "interrupted" and test_loader is not None:
        best = run_path / f"{cfg.train.test_checkpoint}.pt"
        tested_epoch = result["epochs"]  # the weights in memory, unless a checkpoint is read
        if best.exists():
            ckpt = load_checkpoint(best, map_location=device)
            trainer.model_without_ddp.load_state_dict(ckpt["model_state_dict"])
            tested_epoch = int(ckpt.get("epoch", tested_epoch))
        test = trainer.evaluate(test_loader, prefix="test")
        trainer.log_test(test, tested_epoch)
        out["test"] = test
        if is_main_process():
            (run_path / "test_metrics.json").write_text(json.dumps(
                {"checkpoint": str(best), "epoch": tested_epoch, **test}, indent=2))
            if dm.num_classes:
                out["test_report"] = write_test_report(trainer.model_without_ddp, dm, best,
                                                       run_path / "test_report", device, cfg)
        out["test_metrics_file"] = str(run_path / "test_metrics.json")
    return out


def write_test_report(model: nn.Module, dm: DataModule, checkpoint: Path, out_dir: Path,
                      device: torch.device, cfg: ExperimentConfig) -> dict[str, str]:
    """The full report of the test split (per-class precision/recall/F1/IoU, confusion matrix;
    ``metrics.json``, ``report.md``, PNGs): the same scoring and files as ``sitsformer
    evaluate`` (:func:`~sitsformer.evaluation.evaluate.evaluate_model`)."""
    from sitsformer.evaluation.evaluate import evaluate_model
    from sitsformer.evaluation.report import write_report

    idx = dm.splits["test"]
    res = evaluate_model(model, dm.samples, spec=dm.spec, indices=idx,
                         batch_size=dm.eval_batch_size or 256, precision="fp32", device=device,
                         progress=False, class_names=dm.classes)
    res["split"] = "test"
    res["scored_ids"] = dm.ids[idx].tolist()
    c = res["counts"]
    info = {"checkpoint": str(checkpoint), "data": dm.meta["source"],
            "split": f"test ({dm.split} split, {len(idx)} samples)", "samples": c["samples"],
            "scored": c["scored"], "excluded (no valid date)": c["excluded_no_valid_date"],
            "unlabelled": c["unlabelled"], "scale": f"{dm.spec.scale} "  # type: ignore[union-attr]
            f"({dm.spec.scale_source})"}  # type: ignore[union-attr]
    files = write_report(res, out_dir, title="SITS-Former test report", info=info,
                         plots=cfg.logging.plots)
    return {k: str(v) for k, v in files.items()}


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


def resolve_size_rules(cfg: ExperimentConfig, labelled: bool = True,
                       n_train: int | None = None) -> ExperimentConfig:
    """``cfg`` with the rules that depend on the training split's size resolved, each
    printed when it changes something:

    * ``train.small_set``: a split of at most ``train.small_set_max_samples`` samples trains
      with these settings (:func:`~sitsformer.training.config.with_small_set`; the run's
      ``config.yaml`` holds the settings used and the rule cleared);
    * ``train.ensemble``: set to 1 when ``train.ensemble_max_samples`` is set and the split
      holds more samples (``config.yaml`` then says ``ensemble: 1``).

    Unchanged otherwise. ``n_train``: the training split's size when the caller has read the
    data already (else it is read here, as the run will read it, once)."""
    t = cfg.train
    small = t.small_set_max_samples is not None and bool(t.small_set)
    if not small and (t.ensemble <= 1 or t.ensemble_max_samples is None):
        return cfg
    if n_train is None:
        n_train = len(DataModule.from_config(cfg.data, labelled=labelled).read().splits["train"])
    if small and n_train <= t.small_set_max_samples:  # type: ignore[operator]
        settings = ", ".join(f"{k}={v}" for k, v in flatten_keys(t.small_set).items())
        cfg = with_small_set(cfg)
        if is_main_process():
            print(f"a training split of {n_train} samples (at most "
                  f"train.small_set_max_samples={t.small_set_max_samples}) trains with the "
                  f"small-set settings: {settings}", flush=True)
    return _resolve_ensemble(cfg, n_train)


def _resolve_ensemble(cfg: ExperimentConfig, n_train: int) -> ExperimentConfig:
    """The ensemble rule of :func:`resolve_size_rules`."""
    t = cfg.train
    if t.ensemble <= 1 or t.ensemble_max_samples is None or n_train <= t.ensemble_max_samples:
        return cfg
    if is_main_process():
        print(f"train.ensemble={t.ensemble} not used: the training split holds {n_train} "
              f"samples, more than train.ensemble_max_samples={t.ensemble_max_samples}; one "
              f"model is trained", flush=True)
    return dataclasses.replace(cfg, train=dataclasses.replace(t, ensemble=1))


def epochs_for_min_steps(cfg: ExperimentConfig, batches_per_epoch: int) -> ExperimentConfig:
    """``cfg`` with ``train.epochs`` raised so that training makes at least
    ``train.min_steps`` optimizer updates (small data sets get more epochs; the schedule's
    warm-up and decay stretch with them). Unchanged when ``min_steps`` is unset or already met.
    """
    t = cfg.train
    if not t.min_steps:
        return cfg
    updates = max(1, math.ceil(batches_per_epoch / t.accumulation_steps))
    epochs = max(t.epochs, math.ceil(t.min_steps / updates))
    if epochs == t.epochs:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(t, epochs=epochs))


def run(cfg: ExperimentConfig, recipe: Recipe, resume: str | None = None,
        run_dir: str | Path | None = None, callbacks: Sequence[Any] = (),
        allow_changes: bool = False) -> dict[str, Any]:
    """Run ``recipe`` with ``cfg`` (see the module doc).

    Args:
        cfg: the resolved config (:func:`~sitsformer.training.config.load_config`).
        recipe: a :class:`Recipe`.
        resume: a checkpoint (usually ``<run>/last.pt``) to continue from.
        run_dir: the run folder (default: ``logging.run_dir/logging.name`` or a timestamp).
        callbacks: more trainer callbacks ``cb(trainer, event, info)`` (sweeps report and
            prune on ``"epoch_end"``).
        allow_changes: resume with settings other than the model, the data and
            ``train.epochs`` changed (see :func:`check_resume`); recorded in the run folder.

    Returns:
        ``{"run_dir", "status", "best_checkpoint", "last_checkpoint", "metrics_file", "plots",
        "history", "data", "input_spec", "test", ...}``.
    """
    cfg = resolve_size_rules(cfg, recipe.labelled)
    if cfg.train.ensemble > 1:
        from sitsformer.training.ensemble import run_ensemble

        return run_ensemble(cfg, recipe, run_dir=run_dir, callbacks=callbacks, resume=resume)
    device, run_path = setup_run(cfg, resume, run_dir)
    with run_folder_lock(run_path):
        return _run_in(cfg, recipe, device, run_path, resume, callbacks, allow_changes)


def run_folder_lock(run_path: Path) -> Any:
    """The lock of a run folder (:func:`sitsformer.parallel.locks.output_lock`), taken by the
    main process only (the other processes of a torchrun launch write to the same folder)."""
    from sitsformer.parallel.locks import output_lock  # here: importing training loads no dask

    if not is_main_process():
        return contextlib.nullcontext()
    return output_lock(run_path, what="run folder")


def _run_in(cfg: ExperimentConfig, recipe: Recipe, device: torch.device, run_path: Path,
            resume: str | None, callbacks: Sequence[Any], allow_changes: bool
            ) -> dict[str, Any]:
    """:func:`run` once the run folder is resolved and locked."""
    if resume is not None:
        ckpt = load_checkpoint(resume)
        changes = check_resume(cfg, ckpt, resume, allow_changes)
        if is_main_process():
            record_resume(run_path, resume, ckpt, changes)
        del ckpt
    dm = recipe.data(cfg)
    cfg = epochs_for_min_steps(cfg, len(dm.train_loader()))
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
