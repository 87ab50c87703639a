"""``SITSFormerTrainer``: the training loop, shared by supervised training and pre-training.

One loop for every task (see :mod:`sitsformer.training.tasks`): per optimizer update it runs
``accumulation_steps`` micro-batches (the last window of an epoch may be shorter; micro-batch
losses are weighted by their batch size within the window, so accumulation of ``k`` batches of
``B`` equals one batch of ``k * B``), under autocast (``bf16`` on CPU and GPU, ``fp16`` with a
grad scaler on GPU), clips the gradient norm, steps the optimizer and, for per-update
schedules, the scheduler. After each epoch it validates, steps per-epoch schedules
(``ReduceLROnPlateau`` with the validation loss), logs, and writes ``last.pt``, ``best.pt`` (when
the monitored metric improves) and ``epoch_XXXX.pt`` every ``save_every`` epochs.

Stops: early stopping after ``early_stopping_patience`` epochs without improvement; SIGINT or
SIGTERM saves a resumable ``last.pt`` at the next update boundary and returns; a non-finite
loss raises :class:`NonFiniteLossError` naming epoch, step and batch, without writing any
checkpoint. Under ``torchrun`` the model is wrapped in DistributedDataParallel, gradient sync
is skipped on accumulation micro-steps, metrics are reduced across ranks, and only rank 0 logs
and writes files.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau
from sitsformer._progress import progress_bar

from sitsformer.models.checkpoint import (
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from sitsformer.training.averaging import WeightEMA, ema_extra
from sitsformer.training.distributed import (
    all_reduce_sum,
    barrier,
    is_distributed,
    is_main_process,
)
from sitsformer.training.rng import get_rng_state, set_rng_state
from sitsformer.training.tasks import ClassificationTask
from sitsformer.training.tracking import RunLogger

PRECISIONS = ("fp32", "bf16", "fp16")


class TrainingError(RuntimeError):
    """Training cannot continue."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the message names epoch, step and batch."""


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


class SITSFormerTrainer:
    """Fit a model with a task, optimizer and scheduler; checkpoint, log and resume.

    Args:
        model: the model (moved to ``device``; wrapped in DDP when distributed).
        optimizer: e.g. from :func:`~sitsformer.training.create_optimizer`.
        scheduler: optional; ``scheduler.interval`` (``"epoch"``/``"step"``, set by
            :func:`~sitsformer.training.create_scheduler`) or ``scheduler_interval`` says when
            it is stepped; ``ReduceLROnPlateau`` is stepped per epoch with the validation loss.
        criterion: loss for the default :class:`ClassificationTask` (ignored when ``task`` given).
        task: what to optimise (default: classification with ``criterion``).
        device: default CUDA when available, else CPU.
        num_epochs: default for :meth:`fit`.
        precision: ``"fp32"``, ``"bf16"`` (autocast, CPU or GPU) or ``"fp16"`` (GPU, grad scaler).
        grad_clip: max gradient norm (None or 0 = no clipping).
        accumulation_steps: micro-batches per optimizer update.
        early_stopping_patience: epochs without improvement before stopping (None = never).
        monitor: metric for best checkpoint / early stopping, e.g. ``"val_loss"``, ``"val_oa"``
            (default: the task's ``default_monitor``; ``train_loss`` without validation data).
        monitor_mode: ``"min"`` or ``"max"`` (default: min for names containing "loss").
        run_dir: where checkpoints, metrics, plots and TensorBoard files go (None = nothing
            written).
        save_every: also keep ``epoch_XXXX.pt`` every N epochs.
        tensorboard, wandb, wandb_project, plots: tracking (see :class:`RunLogger`).
        progress: show a tqdm bar (loss, accuracy, learning rate) on rank 0.
        config: the resolved experiment config, stored in checkpoints.
        data_meta: facts about the run's data (source, split sizes ...), stored in checkpoints.
        input_spec: the model's inputs (``InputSpec.to_dict()``: bands, classes, scale,
            normalisation, time axis), stored in checkpoints; ``evaluate`` and ``predict``
            prepare and check their inputs with it.
        handle_signals: save a resumable checkpoint on SIGINT/SIGTERM.
        callbacks: callables ``cb(trainer, event, info)``; events ``"step_end"`` and
            ``"epoch_end"``.
        ema_decay: keep an exponential moving average of the weights
            (:class:`~sitsformer.training.averaging.WeightEMA`), validate it and save it as
            the checkpoints' ``model_state_dict`` (None = off).
        checkpoint_interval_s: least seconds between two checkpoint writes at epoch ends
            (None = every epoch). An improved epoch in between is kept in memory and written
            with the next ``last.pt``; the final epoch, early stopping, a signal and an error
            always write, so a ``kill -9`` loses at most this many seconds of training. Short
            epochs on small sets otherwise spend a fifth of their time writing checkpoints.
        compile_backend: run the training forward and backward through
            ``torch.compile(backend=...)`` (``"inductor"``: fused kernels, for GPUs; None =
            eager). Checkpoints, validation and the EMA use the uncompiled module, so
            checkpoints are the same either way. The first steps (and each new batch shape)
            pay the compilation.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any = None, criterion: nn.Module | None = None, task: Any = None,
                 device: str | torch.device | None = None, num_epochs: int = 10,
                 precision: str = "fp32", grad_clip: float | None = 1.0,
                 accumulation_steps: int = 1, early_stopping_patience: int | None = None,
                 monitor: str | None = None, monitor_mode: str | None = None,
                 run_dir: str | Path | None = None, save_every: int | None = None,
                 tensorboard: bool = True, wandb: bool = False,
                 wandb_project: str = "sitsformer", plots: bool = True, progress: bool = True,
                 config: dict[str, Any] | None = None, data_meta: dict[str, Any] | None = None,
                 input_spec: Any = None,
                 scheduler_interval: str | None = None, handle_signals: bool = True,
                 callbacks: Iterable[Callable[..., None]] = (),
                 ema_decay: float | None = None, checkpoint_interval_s: float | None = None,
                 compile_backend: str | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' on CPU")
        if precision == "bf16":
            from sitsformer._hardware import warn_emulated_bf16

            warn_emulated_bf16(self.device, "train.precision=bf16")
        self.model_without_ddp = model.to(self.device)
        self.model: nn.Module = self.model_without_ddp
        if is_distributed() and not isinstance(model, DistributedDataParallel):
            self.model = DistributedDataParallel(
                self.model_without_ddp,
                device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if compile_backend:
            self.model = torch.compile(self.model, backend=compile_backend)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval or getattr(scheduler, "interval", "epoch")
        self.task = task if task is not None else ClassificationTask(criterion)
        self.num_epochs = num_epochs
        self.precision = precision
        self.grad_clip = grad_clip
        self.accumulation_steps = int(accumulation_steps)
        self.early_stopping_patience = early_stopping_patience
        self.monitor = monitor
        self.monitor_mode = monitor_mode
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.save_every = save_every
        self.tracking = dict(tensorboard=tensorboard, wandb=wandb, wandb_project=wandb_project,
                             plots=plots)
        self.progress = progress
        self.config = config or {}
        self.data_meta = data_meta or {}
        self.input_spec = (input_spec.to_dict() if hasattr(input_spec, "to_dict")
                           else input_spec)
        self.handle_signals = handle_signals
        self.callbacks = list(callbacks)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer updates
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self._progress_state: dict[str, Any] | None = None
        self._stop_signal: int | None = None
        self._logger: RunLogger | None = None  # set during fit (rank 0 with a run_dir)
        self.wandb_run_id: str | None = None  # kept in checkpoints: a resumed run continues it
        self._wandb_open: Any = None  # the W&B run fit() left open for log_test
        self.ema = WeightEMA(self.model_without_ddp, ema_decay) if ema_decay else None
        self.checkpoint_interval_s = checkpoint_interval_s
        self._pending_best: dict[str, Any] | None = None  # improved, not yet written
        self._saved_at: float | None = None  # monotonic time of the last epoch-end write

    def averaged(self) -> contextlib.AbstractContextManager[Any]:
        """Within the block the model holds the averaged weights (no-op without EMA)."""
        return self.ema.applied(self.model_without_ddp) if self.ema else contextlib.nullcontext()

    # ------------------------------------------------------------------------------ helpers
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast context for the chosen precision."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[-1]["lr"])

    def _monitor(self, has_val: bool) -> tuple[str, str]:
        name = self.monitor or (getattr(self.task, "default_monitor", "val_loss") if has_val
                                else "train_loss")
        mode = self.monitor_mode or ("min" if "loss" in name else "max")
        return name, mode

    def _emit(self, event: str, info: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb(self, event, info)

    # ------------------------------------------------------------------------------ state
    def state_dict(self, progress: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything a checkpoint holds (plain data)."""
        base = self.model_without_ddp
        weights = {"model_state_dict": base.state_dict()}
        if self.ema is not None:  # evaluate/predict load the average; resuming the raw weights
            weights = {"model_state_dict": self.ema.state_dict(),
                       "train_model_state_dict": weights["model_state_dict"],
                       **ema_extra(self.ema)}
        return {
            "model_config": base.config.to_dict() if hasattr(base, "config") else {},
            **weights,
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler else None,
            "scaler_state_dict": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "epoch_progress": progress,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "metric_name": self._monitor(True)[0],
            "rng_state": get_rng_state(),
            "config": self.config,
            "data_meta": self.data_meta,
            "input_spec": self.input_spec,
            "task": getattr(self.task, "name", type(self.task).__name__),
            "history": self.history,
            "wandb_run_id": self.wandb_run_id,
        }

    def save(self, name: str, progress: dict[str, Any] | None = None) -> Path | None:
        """Write ``run_dir/name`` on rank 0 (no-op without ``run_dir``)."""
        if self.run_dir is None or not is_main_process():
            return None
        return save_checkpoint(self.run_dir / name, self.state_dict(progress))

    def _flush_best(self) -> None:
        """Write an improved epoch kept in memory by ``checkpoint_interval_s`` to best.pt."""
        if self._pending_best is not None and self.run_dir is not None:
            save_checkpoint(self.run_dir / "best.pt", self._pending_best)
        self._pending_best = None

    def _save_epoch(self, epoch: int, improved: bool, final: bool) -> None:
        """best.pt (when improved) and last.pt at the end of ``epoch``: at once, or, with
        ``checkpoint_interval_s``, when that long has passed since the last write (always at
        the ``final`` epoch)."""
        interval = self.checkpoint_interval_s
        now = time.monotonic()
        due = (interval is None or final or self._saved_at is None
               or now - self._saved_at >= interval)
        if improved:
            if due:
                self._pending_best = None
                self.save("best.pt")
            elif self.run_dir is not None and is_main_process():
                self._pending_best = copy.deepcopy(self.state_dict())
        if due:
            self._flush_best()
            self.save("last.pt")
            self._saved_at = now

    def load_state(self, path: str | Path, weights_only: bool = False) -> dict[str, Any]:
        """Restore model (and, unless ``weights_only``, optimizer, scheduler, scaler, counters
        and RNG states) from a checkpoint; returns the checkpoint.

        The optimizer's state (moments) and the step count come from the checkpoint; its
        hyper-parameters (``lr``, ``weight_decay``, betas ...) and a step-function schedule
        (``create_scheduler``'s ``LambdaLR``, a pure function of the step) come from the
        optimizer and scheduler this trainer was built with, evaluated at the checkpoint's
        step. With the same settings this is the exact continuation; with a longer run
        (``num_epochs``) or a changed schedule, training continues on the new curve. Other
        schedulers (``ReduceLROnPlateau``, PyTorch's recursive ones) are restored as saved,
        learning rate included.
        """
        ckpt = load_checkpoint(path, map_location=self.device)
        raw = ckpt.get("train_model_state_dict")
        try:
            self.model_without_ddp.load_state_dict(raw if raw is not None and not weights_only
                                                   else ckpt["model_state_dict"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise TrainingError(f"{path}: the checkpoint's weights do not fit this model "
                                f"({' '.join(first[1:2]).strip() or first[0]})") from None
        if self.ema is not None:
            self.ema.load(ckpt["model_state_dict"], ckpt.get("ema_updates", 0)
                          if raw is not None else 0)
        if weights_only:
            return ckpt
        pure = isinstance(self.scheduler, LambdaLR)
        fresh = [{k: v for k, v in g.items() if k != "params"}
                 for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        if pure:
            for group, settings in zip(self.optimizer.param_groups, fresh):
                group.update(settings)
        saved_sched = ckpt.get("scheduler_state_dict")
        if self.scheduler is not None and saved_sched is not None:
            if pure:
                self._continue_schedule(saved_sched)
            else:
                self.scheduler.load_state_dict(saved_sched)
        if self.scaler is not None and ckpt.get("scaler_state_dict") is not None:
            self.scaler.load_state_dict(ckpt["scaler_state_dict"])
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt["global_step"])
        self.best_metric = ckpt.get("best_metric")
        self.best_epoch = ckpt.get("best_epoch")
        self.bad_epochs = int(ckpt.get("bad_epochs", 0))
        self.history = list(ckpt.get("history", []))
        self._progress_state = ckpt.get("epoch_progress")
        self.wandb_run_id = ckpt.get("wandb_run_id") or self.wandb_run_id
        if ckpt.get("rng_state") is not None:
            set_rng_state(ckpt["rng_state"])
        return ckpt

    def _continue_schedule(self, saved: dict[str, Any]) -> None:
        """Put this trainer's ``LambdaLR`` at the saved step and set the learning rates it
        gives there (the same formula as ``LambdaLR.get_lr``)."""
        sched = self.scheduler
        sched.last_epoch = int(saved["last_epoch"])
        sched._step_count = int(saved.get("_step_count", sched.last_epoch + 1))
        lrs = [base * lam(sched.last_epoch) for lam, base in zip(sched.lr_lambdas, sched.base_lrs)]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        sched._last_lr = list(lrs)

    # ------------------------------------------------------------------------------ loops
    def train_epoch(self, loader: Iterable[dict[str, Any]], epoch: int) -> dict[str, float] | None:
        """One epoch of updates. Returns the epoch's training numbers, or None when stopped by
        a signal (a resumable checkpoint has been written)."""
        self.model.train()
        progress = self._progress_state or {}
        self._progress_state = None
        skip = int(progress.get("batches", 0))
        sums = {k: float(progress.get(k, 0.0))
                for k in ("loss_sum", "count", "correct", "excluded", "samples")}
        total = len(loader) if hasattr(loader, "__len__") else None
        it = iter(loader)
        for _ in range(skip):
            next(it)
        bar = progress_bar(total=total, initial=skip, desc=f"epoch {epoch}", leave=False,
                           enabled=self.progress and is_main_process(), dynamic_ncols=True)
        batch_index = skip
        t0 = time.perf_counter()
        try:
            while True:
                window = []
                for batch in it:
                    window.append(batch)
                    if len(window) == self.accumulation_steps:
                        break
                if not window:
                    break
                sizes = [int(b["sequence"].shape[0]) for b in window]
                bad: tuple[int, float] | None = None
                update_loss, update_count = 0.0, 0
                for j, batch in enumerate(window):
                    batch = _to_device(batch, self.device)
                    last = j == len(window) - 1
                    sync = (contextlib.nullcontext() if last or not isinstance(
                        self.model, DistributedDataParallel) else self.model.no_sync())
                    with sync:
                        with self.autocast():
                            loss, out = self.task.forward_loss(self.model, batch)
                        value = float(loss.detach())
                        if not math.isfinite(value) and bad is None:
                            bad = (batch_index + j, value)
                        scaled = loss * (sizes[j] / sum(sizes))
                        (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                    n = int(out.get("count", sizes[j]))
                    sums["loss_sum"] += value * n if math.isfinite(value) else 0.0
                    sums["count"] += n
                    update_loss += value * n if math.isfinite(value) else 0.0
                    update_count += n
                    sums["correct"] += int(out.get("correct", 0))
                    sums["excluded"] += int(out.get("excluded", 0))
                    sums["samples"] += sizes[j]
                flag = float(bad is not None)
                if is_distributed():
                    flag = float(all_reduce_sum([flag], self.device)[0])
                if flag:
                    self.optimizer.zero_grad(set_to_none=True)
                    where = (f"batch {bad[0]} of epoch {epoch} (loss {bad[1]})" if bad
                             else f"another rank, epoch {epoch}")
                    raise NonFiniteLossError(
                        f"non-finite loss at epoch {epoch}, step {self.global_step + 1}, {where}; "
                        "stopping without writing checkpoints (best.pt is untouched). Lower the "
                        "learning rate, enable grad_clip, or check the inputs for NaN/inf."
                    )
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                if self.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.global_step += 1
                step_loss = update_loss / max(update_count, 1)
                step_lr = self.lr()  # the rate this update used (before the scheduler steps)
                if self._logger is not None:
                    self._logger.log_step(self.global_step, step_loss, step_lr)
                if self.ema is not None:
                    self.ema.update(self.model_without_ddp)
                if self.scheduler is not None and self.scheduler_interval == "step" and not \
                        isinstance(self.scheduler, ReduceLROnPlateau):
                    self.scheduler.step()
                batch_index += len(window)
                bar.update(len(window))
                cnt = max(sums["count"], 1)
                bar.set_postfix(loss=f"{sums['loss_sum'] / cnt:.4f}",
                                acc=f"{100 * sums['correct'] / cnt:.1f}%", lr=f"{self.lr():.2e}")
                self._emit("step_end", {"epoch": epoch, "batch": batch_index,
                                        "global_step": self.global_step, "loss": step_loss,
                                        "lr": step_lr})
                stop = float(self._stop_signal is not None)
                if is_distributed():
                    stop = float(all_reduce_sum([stop], self.device)[0])
                if stop:
                    self.save("last.pt", progress={"batches": batch_index, **sums})
                    barrier()
                    return None
        finally:
            bar.close()
        elapsed = time.perf_counter() - t0
        tot = all_reduce_sum([sums["loss_sum"], sums["count"], sums["correct"],
                              sums["excluded"], sums["samples"]], self.device).tolist()
        cnt = max(tot[1], 1.0)
        return {"train_loss": tot[0] / cnt, "train_acc": tot[2] / cnt,
                "train_excluded": int(tot[3]), "epoch_time_s": elapsed,
                "samples_per_s": tot[4] / elapsed if elapsed > 0 else float("nan")}

    @torch.no_grad()
    def evaluate(self, loader: Iterable[dict[str, Any]], prefix: str = "val") -> dict[str, float]:
        """Loss and task metrics over ``loader`` (reduced across ranks), keys ``prefix_*``."""
        model = self.model_without_ddp
        was_training = model.training
        model.eval()
        metrics = self.task.make_metrics(model) if hasattr(self.task, "make_metrics") else None
        loss_sum, count, excluded = 0.0, 0, 0
        for batch in loader:
            batch = _to_device(batch, self.device)
            with self.autocast():
                loss, out = self.task.forward_loss(model, batch)
            n = int(out.get("count", batch["sequence"].shape[0]))
            if n:
                loss_sum += float(loss) * n
            count += n
            excluded += int(out.get("excluded", 0))
            if metrics is not None:
                self.task.update_metrics(metrics, out)
        tot = all_reduce_sum([loss_sum, count, excluded], self.device).tolist()
        result = {f"{prefix}_loss": tot[0] / max(tot[1], 1.0), f"{prefix}_excluded": int(tot[2])}
        if metrics is not None:
            result.update({f"{prefix}_{k}": v
                           for k, v in self.task.compute_metrics(metrics).items()})
        model.train(was_training)
        return result

    def log_test(self, metrics: dict[str, Any], epoch: int | None = None) -> None:
        """Add test metrics (``test_*``, e.g. from ``evaluate(loader, "test")``) of the
        checkpoint of ``epoch`` to the run's TensorBoard and W&B logs (the same W&B run as
        :meth:`fit`). No-op off rank 0, without ``run_dir`` or without either tracker."""
        if self.run_dir is None or not is_main_process() or not (
                self.tracking["tensorboard"] or self.tracking["wandb"]):
            return
        logger = RunLogger(self.run_dir, config=self.config, resume_epoch=self.epoch,
                           wandb_id=self.wandb_run_id, wandb_run=self._wandb_open,
                           **{**self.tracking, "plots": False})
        try:
            logger.log_test(metrics, epoch)
        finally:
            self._wandb_open = None
            logger.close()

    # ------------------------------------------------------------------------------ fit
    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return old

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None:  # second signal: stop now
                raise KeyboardInterrupt
            self._stop_signal = signum
            if is_main_process():
                print(f"\nreceived {signal.Signals(signum).name}: saving a resumable checkpoint "
                      "at the end of this update", flush=True)

        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    def fit(self, train_loader: Iterable[dict[str, Any]],
            val_loader: Iterable[dict[str, Any]] | None = None, num_epochs: int | None = None,
            resume_from: str | Path | None = None) -> dict[str, Any]:
        """Train until ``num_epochs`` (total, counting resumed ones), early stopping or a signal.

        Args:
            train_loader: batches of collated samples; its sampler's (or batch sampler's)
                ``set_epoch(epoch)`` is called each epoch (use :func:`~sitsformer.training.make_loader` for exact,
                resumable shuffling).
            val_loader: optional validation batches.
            num_epochs: total epochs (default: the constructor's).
            resume_from: a checkpoint from an earlier run of the same setup.

        Returns:
            ``{"status": "completed" | "early_stopping" | "interrupted", "epochs": completed
            epochs, "global_step", "best_metric", "best_epoch", "metric_name", "history"}``.
        """
        num_epochs = num_epochs or self.num_epochs
        if self.run_dir is not None and is_main_process():
            stale = remove_stale_temporaries(self.run_dir)  # left by a killed writer
            if stale and self.progress:
                print(f"removed {len(stale)} stale temporary file(s) from {self.run_dir}: "
                      + ", ".join(p.name for p in stale))
        if resume_from is not None:
            self.load_state(resume_from)
            if self.epoch > num_epochs:
                raise TrainingError(f"{resume_from} has completed {self.epoch} epoch(s), more "
                                    f"than the {num_epochs} asked for; ask for at least "
                                    f"{self.epoch} epochs to resume it")
            if is_main_process() and self.progress:
                print(f"resumed from {resume_from}: {self.epoch} epoch(s) done, "
                      f"step {self.global_step}")
        name, mode = self._monitor(val_loader is not None)
        logger = None
        if self._wandb_open is not None:  # an earlier fit's run that no log_test closed
            self._wandb_open.finish()
            self._wandb_open = None
        if self.run_dir is not None and is_main_process():
            # on resume the metrics files are rewritten from the checkpoint's history, so rows
            # a kill kept from reaching metrics.jsonl come back
            logger = RunLogger(self.run_dir, config=self.config,
                               resume_epoch=self.epoch if resume_from else None,
                               resume_step=self.global_step if resume_from else None,
                               wandb_id=self.wandb_run_id if resume_from else None,
                               history=self.history if resume_from else None,
                               **self.tracking)
            self.wandb_run_id = logger.wandb_run_id
        self._logger = logger
        self._stop_signal = None
        old = self._install_signals()
        status = "completed"
        try:
            for epoch in range(self.epoch + 1, num_epochs + 1):
                for part in ("sampler", "batch_sampler"):  # a store's loader: batch_sampler
                    sampler = getattr(train_loader, part, None)
                    if hasattr(sampler, "set_epoch"):
                        sampler.set_epoch(epoch)
                train = self.train_epoch(train_loader, epoch)
                if train is None:
                    status = "interrupted"
                    break
                record: dict[str, Any] = {"epoch": epoch, "global_step": self.global_step,
                                          "lr": self.lr(), **train}
                if val_loader is not None:
                    with self.averaged():
                        record.update(self.evaluate(val_loader, "val"))
                if self.scheduler is not None:
                    if isinstance(self.scheduler, ReduceLROnPlateau):
                        self.scheduler.step(record.get("val_loss", record["train_loss"]))
                    elif self.scheduler_interval == "epoch":
                        self.scheduler.step()
                self.epoch = epoch
                value = record.get(name)
                if value is None:
                    raise TrainingError(f"monitored metric {name!r} not among the epoch's "
                                        f"metrics {sorted(record)}")
                improved = self.best_metric is None or (
                    value < self.best_metric if mode == "min" else value > self.best_metric)
                if improved:
                    self.best_metric, self.best_epoch, self.bad_epochs = float(value), epoch, 0
                else:
                    self.bad_epochs += 1
                record["best_" + name] = self.best_metric
                self.history.append(record)
                final = epoch == num_epochs or (
                    self.early_stopping_patience is not None
                    and self.bad_epochs >= self.early_stopping_patience)
                self._save_epoch(epoch, improved, final)
                if self.save_every and epoch % self.save_every == 0:
                    self.save(f"epoch_{epoch:04d}.pt")
                if logger is not None:
                    logger.log_epoch(record)
                if self.progress and is_main_process():
                    shown = {k: record[k] for k in ("train_loss", "train_acc", "val_loss",
                                                    "val_oa", "lr") if k in record}
                    print(f"epoch {epoch}/{num_epochs} " + " ".join(
                        f"{k}={v:.4g}" for k, v in shown.items()), flush=True)
                self._emit("epoch_end", record)
                if (self.early_stopping_patience is not None
                        and self.bad_epochs >= self.early_stopping_patience):
                    status = "early_stopping"
                    break
            barrier()
        finally:
            self._flush_best()  # an improved epoch not yet written (a signal, an error)
            for sig, h in old.items():
                signal.signal(sig, h)
            self._logger = None
            if logger is not None:
                # the W&B run stays open for log_test (same run, same folder)
                logger.close(finish_wandb=False)
                self._wandb_open = logger.wandb_run
        return {"status": status, "epochs": self.epoch, "global_step": self.global_step,
                "best_metric": self.best_metric, "best_epoch": self.best_epoch,
                "metric_name": name, "stop_signal": self._stop_signal, "history": self.history}
