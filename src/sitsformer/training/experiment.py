"""Run a whole experiment from an :class:`~sitsformer.training.config.ExperimentConfig`.

``run_experiment(config)`` is what ``sitsformer train`` and ``sitsformer demo`` do: read the
source, split it (the source's own split, or grouped / stratified / random), scale and
standardise with train-split statistics, build the model, optimizer, scheduler and loss, fit
with :class:`~sitsformer.training.SITSFormerTrainer`, then evaluate the best checkpoint on the
test split and write ``test_metrics.json``. Under ``torchrun`` it runs with DDP.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sitsformer.data import (
    Compose,
    Normalize,
    Scale,
    compute_normalization,
    group_split,
    open_source,
    random_split,
    stratified_split,
)
from sitsformer.models import create_sits_former
from sitsformer.training.checkpoint import load_checkpoint
from sitsformer.training.config import ExperimentConfig, save_config
from sitsformer.training.data_utils import make_loader
from sitsformer.training.distributed import (
    broadcast_object,
    get_world_size,
    is_main_process,
    setup_distributed,
)
from sitsformer.training.losses import create_criterion
from sitsformer.training.optim import create_optimizer
from sitsformer.training.scheduler import create_scheduler
from sitsformer.training.trainer import SITSFormerTrainer


# ---------------------------------------------------------------------------------- data
@dataclass
class LoadedData:
    """Samples of one source with what splitting and checkpoints need."""

    samples: Any  # a sequence of sample dicts (list or Dataset)
    labels: np.ndarray  # (N,)
    classes: list[str]
    bands: list[str]
    groups: np.ndarray | None = None  # (N,) field / polygon id
    split: np.ndarray | None = None  # (N,) "train" / "val" / "test" from the source
    meta: dict[str, Any] = field(default_factory=dict)


def load_data(cfg: ExperimentConfig) -> LoadedData:
    """Read ``cfg.data.source``: ``"demo"`` (GENERATED), a ``.npz`` in the shared layout, or any
    source ``sitsformer.data.open_source`` reads."""
    d = cfg.data
    if d.source == "demo":
        from sitsformer.data import make_demo_data

        demo = make_demo_data(n_samples=d.demo_samples, img_size=d.demo_img_size,
                              num_classes=d.demo_classes, seed=d.seed)
        return LoadedData(
            samples=demo.samples, labels=np.array([s["label"] for s in demo.samples]),
            classes=demo.classes, bands=demo.bands,
            groups=np.array([s["group"] for s in demo.samples]),
            meta={"source": "demo (GENERATED synthetic data)",
                  "dates": "acquisition dates of the generated series (doy)"},
        )
    path = Path(d.source)
    ds = open_source(str(path), **d.options)
    labels = getattr(ds, "labels", None)
    if labels is None:
        raise ValueError(f"data.source {d.source!r} has no per-sample labels to train on")
    meta = dict(getattr(ds, "meta", {}) or {})
    split = getattr(ds, "split", None)
    dates = meta.get("dates_assumed") or (
        "day of year from the acquisition dates" if meta.get("time_axis") != "t_index"
        else "dates unknown: doy holds the time-step position 1..T")
    return LoadedData(samples=ds, labels=np.asarray(labels), classes=list(ds.classes),
                      bands=list(ds.bands), groups=getattr(ds, "groups", None),
                      split=None if split is None else np.asarray(split),
                      meta={"source": str(path), "dates": dates,
                            "exclusions": meta.get("exclusions", {})})


def split_indices(data: LoadedData, how: str, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, np.ndarray]:
    """Train / val / test indices, from :mod:`sitsformer.data.splits`.

    ``upstream``: the source's ``split`` (val carved out of train by groups when known);
    ``group``: whole groups (fields/polygons) per split, assigned class by class, so no field
    is on two sides; ``stratified``: per-class random; ``random``: plain random.
    """
    n = len(data.labels)
    if how == "upstream":
        if data.split is None:
            raise ValueError("data.split='upstream' but the source has no split; use "
                             "'group', 'stratified' or 'random'")
        all_idx = np.arange(n)
        test = all_idx[data.split == "test"]
        pool = all_idx[data.split == "train"]
        if (data.split == "val").any():
            return {"train": pool, "val": all_idx[data.split == "val"], "test": test}
        if data.groups is not None:
            train, val = group_split(data.groups[pool], test_size=val_fraction, seed=seed,
                                     labels=data.labels[pool])
        else:
            train, val = stratified_split(data.labels[pool], test_size=val_fraction, seed=seed)
        return {"train": pool[train], "val": pool[val], "test": test}
    if how == "group":
        if data.groups is None:
            raise ValueError("data.split='group' needs group ids in the source; use 'stratified'")
        parts = group_split(data.groups, test_size=test_fraction, val_size=val_fraction,
                            seed=seed, labels=data.labels)
    elif how == "stratified":
        parts = stratified_split(data.labels, test_size=test_fraction, val_size=val_fraction,
                                 seed=seed)
    elif how == "random":
        parts = random_split(n, test_size=test_fraction, val_size=val_fraction, seed=seed)
    else:
        raise ValueError(f"data.split must be upstream, group, stratified or random, got {how!r}")
    if val_fraction > 0:
        train, val, test = parts
    else:
        (train, test), val = parts, np.array([], dtype=np.int64)
    return {"train": train, "val": val, "test": test}


def band_statistics(samples: Any, indices: Sequence[int], scale: float,
                    max_samples: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of ``sequence / scale`` over the valid observations of (at most
    ``max_samples`` of) ``indices``: :func:`sitsformer.data.compute_normalization`."""
    mean, std = compute_normalization(samples, list(indices)[:max_samples],
                                      transform=Scale(1.0 / scale))
    return mean.astype(np.float32), std.astype(np.float32)


class PreparedDataset(Dataset):
    """``samples[indices]`` divided by ``scale`` and standardised with ``mean``/``std``
    (the data package's :class:`~sitsformer.data.Scale` and :class:`~sitsformer.data.Normalize`)."""

    def __init__(self, samples: Any, indices: Sequence[int], scale: float,
                 mean: np.ndarray | None, std: np.ndarray | None):
        self.samples, self.indices, self.scale = samples, np.asarray(indices), scale
        steps: list[Any] = [Scale(1.0 / scale)]
        if mean is not None:
            steps.append(Normalize(mean, std))
        self.prepare = Compose(steps)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.prepare(self.samples[int(self.indices[i])])
        s.pop("group", None)
        return s


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: ExperimentConfig, in_channels: int, num_classes: int, img_size: int,
                max_t: int) -> torch.nn.Module:
    m = {k: v for k, v in vars(cfg.model).items() if k not in ("variant", "grad_checkpointing")}
    m["in_channels"] = m["in_channels"] or in_channels
    m["num_classes"] = m["num_classes"] or num_classes
    if m["img_size"] is None:
        m["img_size"] = img_size
        if img_size == 1:
            m["patch_size"] = m["patch_size"] or 1
    model = create_sits_former(cfg.model.variant, **m)
    if model.config.max_seq_len < max_t:
        m["max_seq_len"] = max_t
        model = create_sits_former(cfg.model.variant, **m)
    if m["in_channels"] != in_channels:
        raise ValueError(f"model.in_channels={m['in_channels']} but the data has {in_channels} bands")
    model.set_grad_checkpointing(cfg.model.grad_checkpointing)
    return model


def resolve_run_dir(cfg: ExperimentConfig, resume: str | None) -> Path:
    if cfg.logging.name:
        path = Path(cfg.logging.run_dir) / cfg.logging.name
    elif resume:
        path = Path(resume).parent
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(cfg.logging.run_dir) / f"run-{stamp}"
    return Path(broadcast_object(str(path)))


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


def fit_and_test(cfg: ExperimentConfig, model: Any, optimizer: Any, scheduler: Any,
                 run_path: Path, device: torch.device, data_meta: dict[str, Any],
                 train_loader: Any, val_loader: Any, test_loader: Any,
                 resume: str | None = None, criterion: Any = None, task: Any = None,
                 callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """What train, pre-train and fine-tune runs share after the data and model are ready:
    write ``config.yaml`` and ``data_meta.json`` (rank 0), build the trainer from the config's
    ``train`` and ``logging`` sections, fit, then score the best checkpoint on the test split
    (``test_metrics.json``). Returns the common part of the run summary."""
    if is_main_process():
        run_path.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_path / "config.yaml")
        (run_path / "data_meta.json").write_text(json.dumps(data_meta, indent=2))
    lg = cfg.logging
    trainer = SITSFormerTrainer(
        model, optimizer, scheduler, criterion, task=task, device=device,
        num_epochs=cfg.train.epochs, precision=cfg.train.precision,
        grad_clip=cfg.train.grad_clip, accumulation_steps=cfg.train.accumulation_steps,
        early_stopping_patience=cfg.train.early_stopping_patience,
        monitor=cfg.train.monitor if val_loader is not None else "train_loss",
        run_dir=run_path, save_every=cfg.train.save_every, tensorboard=lg.tensorboard,
        wandb=lg.wandb, wandb_project=lg.wandb_project, plots=lg.plots, progress=lg.progress,
        config=cfg.to_dict(), data_meta=data_meta, callbacks=callbacks,
    )
    result = trainer.fit(train_loader, val_loader, resume_from=resume)
    out: dict[str, Any] = {
        "run_dir": str(run_path), "status": result["status"], "epochs": result["epochs"],
        "global_step": result["global_step"], "best_epoch": result["best_epoch"],
        "best_metric": result["best_metric"], "metric_name": result["metric_name"],
        "best_checkpoint": str(run_path / "best.pt"), "last_checkpoint": str(run_path / "last.pt"),
        "metrics_file": str(run_path / "metrics.csv"), "plots": str(run_path / "curves.png"),
        "history": result["history"], "data": data_meta, "trainer": trainer,
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


def setup_run(cfg: ExperimentConfig, resume: str | None, run_dir: str | Path | None
              ) -> tuple[torch.device, Path]:
    """What every run does first (train, pre-train, fine-tune): join the process group under
    torchrun, choose the device and threads, check the batch splits across processes, resolve
    the run folder and seed everything. Returns ``(device, run_path)``."""
    device = setup_distributed()
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


def run_experiment(cfg: ExperimentConfig, resume: str | None = None,
                   run_dir: str | Path | None = None,
                   callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train and test as configured; returns paths and numbers (see module docstring).

    Args:
        cfg: the resolved experiment config.
        resume: a checkpoint (usually ``<run>/last.pt``) to continue from.
        run_dir: the run folder (default: ``logging.run_dir/logging.name`` or a timestamp).
        callbacks: trainer callbacks ``cb(trainer, event, info)`` (hyper-parameter sweeps use
            ``"epoch_end"`` to report and prune).

    Returns:
        ``{"run_dir", "status", "best_checkpoint", "metrics_file", "plots", "test": {...},
        "history", "data": {...}}``.
    """
    device, run_path = setup_run(cfg, resume, run_dir)

    data = load_data(cfg)
    splits = split_indices(data, cfg.data.split, cfg.data.val_fraction, cfg.data.test_fraction,
                           cfg.data.seed)
    if len(splits["train"]) == 0:
        raise ValueError("the train split is empty")
    mean = std = None
    if cfg.data.normalize:
        mean, std = band_statistics(data.samples, splits["train"], cfg.data.scale)
    datasets = {k: PreparedDataset(data.samples, v, cfg.data.scale, mean, std)
                for k, v in splits.items()}
    first = datasets["train"][0]
    t_max = max(int(np.asarray(data.samples[int(i)]["mask"]).shape[0])
                for i in range(len(data.labels))) if len(data.labels) <= 20000 else 366
    _, c, h, _ = first["sequence"].shape
    num_classes = len(data.classes)

    per_rank = cfg.data.batch_size // get_world_size()
    eval_bs = cfg.data.eval_batch_size or max(per_rank, 64)
    train_loader = make_loader(datasets["train"], per_rank, seed=cfg.data.seed,
                               num_workers=cfg.data.num_workers)
    val_loader = (make_loader(datasets["val"], eval_bs, train=False,
                              num_workers=cfg.data.num_workers)
                  if len(datasets["val"]) else None)
    test_loader = (make_loader(datasets["test"], eval_bs, train=False,
                               num_workers=cfg.data.num_workers)
                   if len(datasets["test"]) else None)

    model = build_model(cfg, c, num_classes, h, t_max)
    optimizer, scheduler = build_optimization(cfg, model, len(train_loader))
    train_labels = data.labels[splits["train"]]
    criterion = create_criterion(cfg.loss.type, num_classes=num_classes,
                                 class_weights=cfg.loss.class_weights,
                                 weight_source=torch.as_tensor(train_labels),
                                 label_smoothing=cfg.loss.label_smoothing,
                                 focal_gamma=cfg.loss.focal_gamma)
    data_meta = {
        "source": data.meta.get("source", cfg.data.source), "bands": data.bands,
        "classes": data.classes, "scale": cfg.data.scale,
        "normalization": {"mean": None if mean is None else mean.tolist(),
                          "std": None if std is None else std.tolist()},
        "dates": data.meta.get("dates", ""), "split": cfg.data.split,
        "split_sizes": {k: int(len(v)) for k, v in splits.items()},
        "generated": cfg.data.source == "demo",
        "exclusions": data.meta.get("exclusions", {}),
    }
    return fit_and_test(cfg, model, optimizer, scheduler, run_path, device, data_meta,
                        train_loader, val_loader, test_loader, resume=resume,
                        criterion=criterion, callbacks=callbacks)
